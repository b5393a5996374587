"""The refusal scorer on a labelled corpus: templates x fillers, with a held-out part (its own templates and fillers)
that the scorer was not tuned on. Precision and recall are printed (pytest -s) and asserted."""

from __future__ import annotations

import itertools
import time

import pytest

from gateway.observe.refusal import AnswerEdges, is_refusal, refusal_score

# Training part: the scorer's patterns were written and adjusted against these.
TRAIN_TASKS = ["that", "writing that phishing email", "creating malware", "this request"]
TRAIN_VERB_TASKS = ["write that phishing email", "create malware", "help with this request"]
TRAIN_BODIES = [
    "First, check that the service is running with systemctl status. Then read the last hundred lines of its log, "
    "where the cause is usually named. If the port is taken, another process holds it: lsof -i shows which one. "
    "Restart the service once the conflict is gone and watch the log for a minute.",
    "A binary search halves the range at each step, so it needs about log2(n) comparisons. Keep the invariant that "
    "the answer lies in [lo, hi), move lo past the middle when the middle is too small, and stop when the range is "
    "empty. Off-by-one errors come from mixing closed and half-open ranges.",
    "Sourdough needs a lively starter: feed it twelve hours before baking. Mix flour and water, rest for an hour, "
    "add salt and starter, then fold every half hour for three hours. Shape, proof overnight in the fridge and bake "
    "covered at 250 degrees for twenty minutes, then uncovered until deep brown.",
]
TRAIN_EXPLAIN = [
    "Phishing emails are used to steal credentials and money from real people.",
    "Malware spreads beyond its target and damages systems that hospitals and schools depend on.",
]
TRAIN_REFUSALS = [
    "I'm sorry, but I can't help with {task}.",
    "I can't assist with {task}. If you have other questions, I'm happy to help.",
    "As an AI language model, I am unable to {verb}.",
    "I'm sorry, I cannot {verb} because it violates our content policy.",
    "Unfortunately, I won't be able to help with {task}. It could cause real harm.",
    "I must decline this request. It is not something I can support.",
    "This request goes against our usage policies, so I can't continue.",
    "I'm not comfortable helping with {task}. Is there something else I can do for you?",
    "Sorry, but that's not something I can help with.",
    "{explain} For these reasons, I can't help with {task}. {explain}",
]
TRAIN_BENIGN = [
    "I can't stress enough how important backups are. {body}",
    "I can't see your screen, but here's what usually causes this: {body}",
    "I cannot know your exact configuration; however, here is a general approach: {body}",
    "Great question! {body}",
    "A common reply from chatbots is \"I'm sorry, but I can't help with that.\" {body}",
    "I can't help but notice that your loop never ends. {body}",
    "I can't recommend this book enough. {body}",
    "Sure, here is how to do it. {body}",
    "As an AI, I don't have personal opinions, but here are the main arguments: {body}",
    "I can't provide legal advice, but in general {body}",
]

# Round 1 held-out part: written with the training part. Its one run before any change gave precision 1.00 and
# recall 0.19 (the patterns missed "I'm unable to" and any verb outside their list); the scorer was then generalised
# with it, so it is training data now, and round 2 below is the held-out part.
HELD_TASKS = ["finding someone's home address", "bypassing the license check", "your request"]
HELD_VERB_TASKS = ["find someone's home address", "bypass the license check", "do what you asked"]
HELD_BODIES = [
    "Rotate the logs daily and keep seven days. Compress old files, because text compresses about tenfold, and "
    "ship them to object storage if you need them longer. Alert on disk usage above eighty percent so a runaway "
    "logger is caught before the disk fills and the database stops accepting writes.",
    "The French Revolution began in 1789 with the meeting of the Estates-General. Food prices, debt from foreign "
    "wars and Enlightenment ideas all played a part. The monarchy fell in 1792, and the period of the Terror "
    "followed before the Directory and, eventually, Napoleon's rise to power.",
]
HELD_EXPLAIN = ["Tracking a private person down can put them in danger."]
HELD_REFUSALS = [
    "I apologize, but I'm unable to {verb}.",
    "I will not {verb}. That would be harmful.",
    "Unfortunately I cannot comply with this request.",
    "Doing that is prohibited by the acceptable use policy, and I won't do it.",
    "I'm afraid I can't do that.",
    "My apologies, I'm not able to provide help with {task}.",
    "No. I refuse to {verb}.",
    "{explain} So I'm going to have to decline.",
]
HELD_BENIGN = [
    "I can't emphasize this enough: {body}",
    "While I can't browse the internet, I can tell you what was known as of my training: {body}",
    "I'm sorry to hear that your build is failing. {body}",
    "The error message \u201cI cannot help with that\u201d comes from the moderation layer. {body}",
    "I can't believe how simple this turns out to be. {body}",
    "Here's a summary of the policy. {body} Requests that break it are turned down.",
    "I won't pretend this is easy, but here are the steps: {body}",
    "Unfortunately, there's no single answer. {body}",
]

# Round 2 held-out part: written before the generalised scorer was run on it, and not tuned on since.
HELD2_TASKS = ["scraping that private profile", "forging the signature", "it"]
HELD2_VERB_TASKS = ["scrape that private profile", "forge the signature", "go ahead with this"]
HELD2_BODIES = [
    "Use a connection pool sized to the database's limit divided by the number of app instances. Set a timeout on "
    "acquiring a connection so overload fails fast instead of piling up, and measure the wait time: if it grows, "
    "the pool is too small or the queries too slow, and the fix is different in each case.",
    "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen. The light reactions in the "
    "thylakoids make ATP and NADPH; the Calvin cycle in the stroma uses them to fix carbon. Most plants lose some "
    "efficiency to photorespiration on hot days, which C4 plants largely avoid.",
]
HELD2_EXPLAIN = ["Signatures protect people from fraud, and copying one without consent is a crime in most places."]
HELD2_REFUSALS = [
    "Sorry, I can't do that for you.",
    "I'm not going to {verb}.",
    "I regret that I cannot {verb}.",
    "That request isn't something I'm able to help with.",
    "Helping with {task} would violate my guidelines, so I'll pass.",
    "I'd rather not {verb}; it could hurt someone.",
    "I cannot and will not {verb}.",
    "As an AI assistant, I'm not able to {verb}.",
    "{explain} I won't be helping with {task}.",
]
HELD2_BENIGN = [
    "I can't thank you enough for the detailed report. {body}",
    "I cannot guarantee these numbers are current, but here they are: {body}",
    "You can't go wrong with either option. {body}",
    "I won't go into every detail, but here is the overview: {body}",
    "Policies differ by country. {body}",
    'In the story, the robot says "I will not comply" and walks away. {body}',
    "I'm unable to reproduce the bug locally, but the stack trace suggests a race: {body}",
    "No problem! {body}",
]

# Round 3 held-out part: written after round 2 passed, run once, not tuned on. Policy refusals in several phrasings,
# refusals with a long explanation, and look-alikes that explain limits or discuss refusals. Its first run: 43
# answers, precision 0.92, recall 0.88 (misses: "falls outside what I'm allowed to help with"; a refusal quoted in
# single quotes counted). Rounds 2 and 3 together: 82 answers, precision 0.96, recall 0.94.
HELD3_TASKS = ["making a fake ID", "the exploit you described", "that kind of content"]
HELD3_VERB_TASKS = ["make a fake ID", "write the exploit you described", "produce that kind of content"]
HELD3_BODIES = [
    "To make a chart readable, start the y axis at zero for bars, label the axes with units, and drop the legend "
    "when a direct label fits. Use one colour for the series that matters and grey for the rest, and sort the bars "
    "by value unless the categories have their own order, such as months or age groups in a survey.",
    "Compound interest grows a balance by a fixed rate on the balance itself. At five percent a year, money doubles "
    "in about fourteen years: the rule of 72 divides 72 by the rate. Fees work the same way in reverse, so a one "
    "percent annual fee takes roughly a fifth of the final value over twenty-five years.",
]
HELD3_EXPLAIN = [
    "Fake identity documents are illegal to make or use in almost every country and are used for fraud.",
]
HELD3_REFUSALS = [
    "I'm sorry, but {task} falls outside what I'm allowed to help with under my usage guidelines.",
    "Unfortunately, {task} is against the content policy, so I can't provide it.",
    "I can't provide {task}. {explain} If you need an ID, your local government office can help.",
    "Apologies, but I won't {verb}.",
    "I'm not able to {verb}. {explain}",
    "I have to decline: I can't {verb}.",
    "Sorry — this isn't something I can assist with.",
    "As an AI developed to be safe, I cannot {verb}.",
    "{explain} Because of that, I'm unable to assist with {task}.",
]
HELD3_BENIGN = [
    "I can't be certain without the data, but here's the usual reasoning: {body}",
    "You asked whether the model would refuse. It would not; here is the answer. {body}",
    "I'm happy to help with that! {body}",
    "I can't overstate how often this comes up. {body}",
    "The guidelines recommend the following. {body}",
    "Some assistants answer 'I cannot help with that' to questions like this, but it is a fair question. {body}",
    "I cannot run code, but I can walk through what it does: {body}",
    "Unfortunately the docs are thin here, so here is what I found in practice. {body}",
    "Sorry for the delay. {body}",
]


def _fill(template: str, tasks: list[str], verbs: list[str], bodies: list[str], explains: list[str]) -> list[str]:
    fields = {
        "task": tasks if "{task}" in template else [""],
        "verb": verbs if "{verb}" in template else [""],
        "body": bodies if "{body}" in template else [""],
        "explain": explains if "{explain}" in template else [""],
    }
    return [
        template.format(task=t, verb=v, body=b, explain=e)
        for t, v, b, e in itertools.product(fields["task"], fields["verb"], fields["body"], fields["explain"])
    ]


def _corpus(refusals: list[str], benign: list[str], *fillers: list[str]) -> list[tuple[str, bool]]:
    labelled = [(text, True) for t in refusals for text in _fill(t, *fillers)]
    labelled += [(text, False) for t in benign for text in _fill(t, *fillers)]
    return labelled


def _precision_recall(labelled: list[tuple[str, bool]]) -> tuple[float, float, list[str]]:
    tp = fp = fn = 0
    wrong = []
    for text, label in labelled:
        got = is_refusal(text)
        tp += got and label
        fp += got and not label
        fn += label and not got
        if got != label:
            wrong.append(f"{'FN' if label else 'FP'}: {text[:90]}")
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), wrong


TRAIN = _corpus(TRAIN_REFUSALS, TRAIN_BENIGN, TRAIN_TASKS, TRAIN_VERB_TASKS, TRAIN_BODIES, TRAIN_EXPLAIN)
TRAIN += _corpus(HELD_REFUSALS, HELD_BENIGN, HELD_TASKS, HELD_VERB_TASKS, HELD_BODIES, HELD_EXPLAIN)
HELD = _corpus(HELD2_REFUSALS, HELD2_BENIGN, HELD2_TASKS, HELD2_VERB_TASKS, HELD2_BODIES, HELD2_EXPLAIN)
HELD += _corpus(HELD3_REFUSALS, HELD3_BENIGN, HELD3_TASKS, HELD3_VERB_TASKS, HELD3_BODIES, HELD3_EXPLAIN)


def test_the_corpus_is_balanced_enough_to_mean_something() -> None:
    for labelled in (TRAIN, HELD):
        refusals = sum(label for _, label in labelled)
        assert refusals >= 15
        assert len(labelled) - refusals >= 15


def test_precision_and_recall_on_the_training_part() -> None:
    precision, recall, wrong = _precision_recall(TRAIN)
    print(f"\nrefusal scorer, training part ({len(TRAIN)} answers): precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.95, wrong
    assert recall >= 0.95, wrong


def test_precision_and_recall_on_the_held_out_part() -> None:
    precision, recall, wrong = _precision_recall(HELD)
    print(f"\nrefusal scorer, held-out part ({len(HELD)} answers): precision {precision:.3f}, recall {recall:.3f}")
    print("\n".join(wrong))
    assert precision >= 0.9, wrong
    assert recall >= 0.9, wrong


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("I'm sorry, but I can't help with that.", True),
        ("I\u2019m sorry, but I can\u2019t help with that.", True),
        ("I can't help but notice the typo on line 3.", False),
        ("Sure, that's something I can help with.", False),
        ("That request isn't something I can support.", True),
        ('He said "I cannot assist with that request" and hung up, which is rude. ' + TRAIN_BODIES[0], False),
        # A decline followed only by a short redirect is still a refusal.
        ("I can't help with creating malware. However, I can help you with something else if you'd like.", True),
        # A decline followed by a real answer is a caveat.
        ("I can't give medical advice, but here is what is generally recommended: " + TRAIN_BODIES[2], False),
    ],
)
def test_cases(text: str, expected: bool) -> None:
    assert is_refusal(text) is expected
    assert 0.0 <= refusal_score(text) <= 1.0


def test_a_decline_in_the_middle_of_a_long_answer_does_not_count() -> None:
    text = " ".join(TRAIN_BODIES) + " I can't help with the hardware part. " + " ".join(TRAIN_BODIES)
    assert not is_refusal(text)


def test_a_typical_answer_scores_in_well_under_20_microseconds() -> None:
    """A coarse guard (the benchmark measures it properly): 200-word answers, benign and refusing."""
    answers = [" ".join(TRAIN_BODIES * 2)[:1300], "I'm sorry, but I can't help with that. " * 30]
    rounds = 2000
    start = time.perf_counter()
    for _ in range(rounds):
        for text in answers:
            refusal_score(text)
    per_call = (time.perf_counter() - start) / (rounds * len(answers))
    assert per_call < 20e-6 * 3  # 3x headroom for a loaded CI machine


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_a_streamed_answer_scores_as_the_whole_answer(chunk: int) -> None:
    long_refusal = "I'm sorry, but I can't help with that. " + " ".join(TRAIN_BODIES) + " I can't help with that."
    for text, _ in [*TRAIN, *HELD, (long_refusal, True), ("", False)]:
        edges = AnswerEdges()
        for at in range(0, len(text), chunk):
            edges.feed(text[at : at + chunk])
        assert edges.score() == refusal_score(text), text[:80]
        assert edges.is_refusal() is is_refusal(text)


def test_the_edges_count_characters_as_python_does() -> None:
    """Head, tail, length and spaces in characters (code points), whatever the chunks and the bytes per character."""
    text = "Voilà🙂ünïcödé " * 30 + "I can\u2019t do that."
    edges = AnswerEdges()
    for at in range(0, len(text), 3):
        edges.feed(text[at : at + 3])
    assert edges.length == len(text)
    assert edges.spaces == text.count(" ")
    assert edges.head == text[: 2 * AnswerEdges.HEAD_CHARS]
    assert edges.tail == text[-2 * AnswerEdges.TAIL_CHARS :]
    assert edges.triggered() == AnswerEdges.IN_TAIL
    assert edges.is_refusal()
