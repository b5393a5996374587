"""verify.compare on hand-written dev pairs, per check: what must pass, what must be told apart and why; and the
matcher that combines verify with the cosine.

The first of these pairs were written to design the verifier, before the first near-miss corpus
(tests/cache/near_miss_corpus.py, no longer held out) was looked at; the role swaps came later, with the order check.
None is held out. The corpora are scored in test_near_miss.py.
"""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.cache.semantic.matcher import RULES_THRESHOLD, SemanticMatcher
from gateway.cache.semantic.prompt_facts import read_prompt
from gateway.cache.semantic.stemming import stem
from gateway.cache.semantic.typos import is_typo_of
from gateway.cache.semantic.verify import REASON_KINDS, VETOES, Verdict, compare

# (cached, asked, expected reason: "" when the same; a reason ending in ":" checks the kind only)
DIFFERENT_NUMBERS = [
    ("convert 5 km to miles", "convert 50 km to miles", "number: 5 vs 50"),
    ("list 10 prime numbers", "list twenty prime numbers", "number: 10 vs 20"),
    ("tip on a $50 bill", "tip on a $60 bill", "number: 50 vs 60"),
    ("how many ounces in 2 cups", "how many ounces in 3 cups", "number: 2 vs 3"),
    ("summarize this article", "summarize this article in 3 bullet points", "number: none vs 3"),
    ("explain black holes", "explain black holes to a 5 year old", "number: none vs 5"),
    ("how long to walk 5 km", "how long to walk 5 miles", "unit: km vs mi"),
    ("what is 2 to the power of 10", "what is 2 to the power of 12", "number: 10 vs 12"),
]
DIFFERENT_VERSIONS = [
    ("sort a list in Python 2", "sort a list in Python 3", "version: 2 vs 3"),
    ("what is new in Python 3.12", "what is new in Python 3.11", "version: 3.12 vs 3.11"),
    ("install node 18 on ubuntu", "install node 20 on ubuntu", "version: 18 vs 20"),
    ("iOS 17 battery tips", "iOS 16 battery tips", "version: 17 vs 16"),
    ("upgrade to Django v4", "upgrade to Django v5", "version: 4 vs 5"),
]
SAME_NUMBERS = [
    ("convert 5km to miles", "convert five km to miles"),
    ("list 10 prime numbers", "list ten prime numbers"),
    ("a recipe for 4 people", "a recipe for four people"),
    ("what is 15% of 80", "what is 15 percent of 80"),
    ("convert 1,000 USD to EUR", "convert 1000 dollars to euros"),
    ("twenty five times four", "25 times 4"),
    ("boil an egg for 7 minutes", "boil an egg for 7 min"),
    ("python3 venv tutorial", "python 3 venv tutorial"),
    ("give me 5 tips for better sleep", "five tips to sleep better"),
]
NEGATION = [
    ("why does my code work", "why does my code not work", "negation"),
    ("foods that are spicy", "foods that are not spicy", "negation"),
    ("should I use a VPN", "should I never use a VPN", "negation"),
    ("Pourquoi le ciel est bleu ?", "Pourquoi le ciel n'est pas bleu ?", "negation"),
    ("Warum ist der Himmel blau?", "Warum ist der Himmel nicht blau?", "negation"),
    ("¿Por qué el cielo es azul?", "¿Por qué el cielo no es azul?", "negation"),
    # polarity carried by a preposition, no negation word
    ("list the products that are in stock", "list the products that are out of stock", "negation"),
    ("what to do when a value is in range", "what to do when a value is out of range", "negation"),
    ("Liste des serveurs en ligne", "Liste des serveurs hors ligne", "negation"),
    ("productos en stock", "productos fuera de stock", "negation"),
    ("produtos em estoque", "produtos fora de estoque", "negation"),
    ("which sizes are in stock", "which sizes are sold out", "negation"),
    ("Le livre est-il disponible ?", "Le livre est-il en rupture de stock ?", "negation"),
]
SAME_NEGATION = [
    ("I don't understand closures in JavaScript", "I do not understand closures in JavaScript"),
    ("why isn't my CSS grid working", "why is my css grid not working"),
    # a count, not a negation
    ("why do nine out of ten startups fail", "why do 9 out of 10 startups fail"),
    ("list products that are out of stock", "list the products which are out of stock"),
]
ANTONYMS = [
    ("enable dark mode", "disable dark mode", "antonym: enable vs disable"),
    ("increase font size in VS Code", "decrease font size in VS Code", "antonym: increase vs decrease"),
    ("add a column to a pandas dataframe", "remove a column from a pandas dataframe", "antonym: add vs remove"),
    ("sort numbers ascending", "sort numbers descending", "antonym: ascending vs descending"),
    ("encrypt a file with gpg", "decrypt a file with gpg", "antonym: encrypt vs decrypt"),
    ("coffee with sugar", "coffee without sugar", "antonym: with vs without"),
    ("is the room available on Friday", "is the room unavailable on Friday", "antonym: available vs unavailable"),
    ("show users who are online", "show users who are offline", "antonym: online vs offline"),
    ("files present in both folders", "files absent in both folders", "antonym: present vs absent"),
    ("which tests passed", "which tests failed", "antonym: passed vs failed"),
    ("Hoe zet ik de verwarming aan?", "Hoe zet ik de verwarming uit?", "antonym: aan vs uit"),
    ("find the max of a list", "find the min of a list", "antonym: max vs min"),
    ("things to do before a job interview", "things to do after a job interview", "antonym: before vs after"),
    ("best way to learn guitar", "worst way to learn guitar", "antonym: best vs worst"),
    ("upload a file to S3", "download a file from S3", "antonym: upload vs download"),
    ("turn on wifi on my laptop", "turn off wifi on my laptop", "antonym: enable vs disable"),
    ("activer le mode sombre", "désactiver le mode sombre", "antonym: activer vs desactiver"),
    ("Kaffee mit Zucker", "Kaffee ohne Zucker", "antonym: mit vs ohne"),
    ("café con azúcar", "café sin azúcar", "antonym: con vs sin"),
    # since verify-pair-v2: the opposites of data/independent v1's near misses, in other words than its own
    ("Which city is warmer in May?", "Which city is colder in May?", "antonym: warmer vs colder"),
    ("Who was the youngest president?", "Who was the oldest president?", "antonym: youngest vs oldest"),
    ("Is the bakery open on Sundays?", "Is the bakery shut on Sundays?", "antonym: open vs shut"),
    ("trains to Lisbon next week", "trains to Lisbon last week", "antonym: next vs last"),
    ("Wann fährt die erste Fähre nach Sylt?", "Wann fährt die letzte Fähre nach Sylt?", "antonym: erste vs letzte"),
    ("Wie wird das Wetter heute in Bonn?", "Wie wird das Wetter morgen in Bonn?", "antonym: heute vs morgen"),
    (
        "Quelle est la première ligne du poème ?",
        "Quelle est la dernière ligne du poème ?",
        "antonym: premiere vs derniere",
    ),
    ("¿A qué hora abre el banco?", "¿A qué hora cierra el banco?", "antonym: abre vs cierra"),
    ("Qual é o caminho mais curto?", "Qual é o caminho mais longo?", "antonym: curto vs longo"),
]
SAME_ANTONYM_WORDS = [
    ("how to turn off notifications on iPhone", "disable iPhone notifications"),
    ("how do I enable dark mode?", "How can I turn on dark mode"),
    ("undo the last git commit", "Hey! quick question: how do I undo the last commit in git?"),
]
LANGUAGES = [
    ("translate 'good morning' to Spanish", "translate 'good morning' to French", "language: Spanish vs French"),
    ("sort a list in Python", "sort a list in JavaScript", "language: Python vs JavaScript"),
    ("write hello world in Rust", "write hello world in Go", "language: Rust vs Go"),
    ("reverse a string in Java", "reverse a string in JavaScript", "language: Java vs JavaScript"),
    ("reverse a string", "reverse a string in C++", "language: none vs C++"),
    ("answer in English: what is a monad", "answer in German: what is a monad", "language: English vs German"),
]
SAME_LANGUAGES = [
    ("reverse a string in JavaScript", "reverse a string in JS"),
    ("translate hello to Spanish", "translate hello into spanish"),
    ("how to center a div in css", "How do I centre a div with CSS?"),
    ("what is a closure in pyhton", "what is a closure in Python"),
]
ENTITIES = [
    ("What is the capital of France?", "What is the capital of Germany?", "entity: france vs germany"),
    ("population of Tokyo", "population of Osaka", "entity: tokyo vs osaka"),
    ("deploy a Flask app to Heroku", "deploy a Django app to Heroku", "entity: flask vs django"),
    ("who is the CEO of Microsoft", "who is the CEO of Apple", "entity: microsoft vs apple"),
    ("weather in Paris tomorrow", "weather in Lyon tomorrow", "entity: paris vs lyon"),
]
SAME_ENTITIES = [
    ("install docker on Ubuntu", "install Docker on ubuntu"),
    ("Who wrote Hamlet?", "who wrote hamlet"),
    ("What is the capital of Australia?", "what's the capital city of australia"),
    ("population of Tokyo", "Population of Tokyo?"),
]
DIRECTIONS = [
    ("convert 5 km to miles", "convert 5 miles to km", "direction: km->mi vs mi->km"),
    ("flights Paris to Rome", "flights Rome to Paris", "direction: paris->rome vs rome->paris"),
    ("translate from English to French", "translate from French to English", "direction:"),
    ("convert celsius to fahrenheit", "convert fahrenheit to celsius", "direction: C->F vs F->C"),
    ("¿Cómo copio contactos del móvil al portátil?", "¿Cómo copio contactos del portátil al móvil?", "direction:"),
    ("move money from savings to checking", "move money from checking to savings", "direction:"),
    ("convert JSON to YAML", "convert YAML to JSON", "direction: json->yaml vs yaml->json"),
    ("5 kg in pounds", "5 lb in kg", "direction: kg->lb vs lb->kg"),
    ("Vuelo de Madrid para Lima", "Vuelo de Lima para Madrid", "direction: madrid->lima vs lima->madrid"),
]
SAME_DIRECTIONS = [
    ("cheap flights from Paris to Rome", "cheap flights to Rome from Paris"),
    ("convert USD to EUR", "USD to EUR conversion"),
    ("convert 5 km to miles", "Convert five kilometres into miles please"),
    ("how to go from Paris to Rome by train", "train from Paris to Rome"),
]
CONSTRAINTS = [
    ("compute fibonacci in Python", "compute fibonacci in Python without recursion", "constraint: without recursion"),
    ("write a poem about the sea", "write a short poem about the sea", "constraint: short"),
    ("explain quantum computing", "explain quantum computing for kids", "constraint: kids"),
    ("a lasagna recipe", "a vegan lasagna recipe", "constraint: vegan"),
    ("read a CSV file in pandas", "read a large CSV file in pandas", "constraint: large"),
    ("reverse a linked list", "reverse a doubly linked list", "constraint: doubly"),
    ("list comprehension in python", "dict comprehension in python", "constraint: list vs dict"),
    ("how to write a for loop in bash", "how to write a while loop in bash", "constraint: forloop vs whileloop"),
]
ALTERNATIVES = [
    ("when was the Eiffel Tower built", "where is the Eiffel Tower", "alternative: when vs where"),
    ("weather in Paris on Monday", "weather in Paris on Tuesday", "alternative: monday vs tuesday"),
    ("best time to visit Japan in spring", "best time to visit Japan in autumn", "alternative: spring vs autumn"),
    ("my weekly budget for food", "my monthly budget for food", "alternative: weekly vs monthly"),
    ("what is on TV tonight", "what is on TV tomorrow", "alternative: tonight vs tomorrow"),
    ("find the second largest element", "find the third largest element", "number: 2 vs 3"),
    ("events of the 10th century", "events of the 20th century", "number: 10 vs 20"),
]
PREFIX_OPPOSITES = [
    ("Wie aktiviere ich den Dunkelmodus?", "Wie deaktiviere ich den Dunkelmodus?", "antonym: aktiviere vs deaktiviere"),
    ("how often to overwater a cactus", "how often to underwater a cactus", "antonym: overwater vs underwater"),
    ("Which plants are toxic to dogs?", "Which plants are non-toxic to dogs?", "antonym: toxic vs non-toxic"),
    ("¿Cómo bloqueo la pantalla del móvil?", "¿Cómo desbloqueo la pantalla del móvil?", "antonym:"),
    ("Comment installer l'application ?", "Comment désinstaller l'application ?", "antonym:"),
    ("arguments for a four-day week", "arguments against a four-day week", "antonym: for vs against"),
]
ROLE_SWAPS = [
    ("Does the dog chase the cat?", "Does the cat chase the dog?", "order: dog .. cat vs cat .. dog"),
    ("Is Python faster than Java?", "Is Java faster than Python?", "order: python .. java vs java .. python"),
    ("What is 2 to the power of 10?", "What is 10 to the power of 2?", "order: 2 .. 10 vs 10 .. 2"),
    ("Does Alice owe Bob money?", "Does Bob owe Alice money?", "order: alice .. bob vs bob .. alice"),
    ("Is a whale bigger than an elephant?", "Is an elephant bigger than a whale?", "order:"),
    ("Can a lion beat a tiger in a fight?", "Can a tiger beat a lion in a fight?", "order:"),
    ("Should the tenant pay the landlord for repairs?", "Should the landlord pay the tenant for repairs?", "order:"),
    ("Is coffee healthier than tea?", "Is tea healthier than coffee?", "order:"),
    (
        "Is Python more popular than Java?",
        "Is Java more popular than Python?",
        "order: python .. java vs java .. python",
    ),
    ("Does the big dog chase the small cat?", "Does the small cat chase the big dog?", "order:"),
    ("Is machine learning harder than web development?", "Is web development harder than machine learning?", "order:"),
    ("Is Tokyo a larger city than Beijing?", "Is Beijing a larger city than Tokyo?", "order:"),
    (
        "Is the dog faster than the cat, and is the dog loyal?",
        "Is the cat faster than the dog, and is the dog loyal?",
        "order:",
    ),
]
# Since verify-pair-v3: the kinds of near miss the learned verdict served on data/independent-2, written anew here in
# other words and in each language the rules read, so a test fails when one of those vetoes stops holding.
SCOPES = [
    ("Are all spiders venomous?", "Are some spiders venomous?", "scope:"),
    ("Do all cats purr?", "Which cats purr?", "scope:"),
    ("Does every airline charge for bags?", "Which airlines charge for bags?", "scope:"),
    ("Is every rhombus a square?", "Are most rhombuses squares?", "scope:"),
    ("Sind alle Schlangen giftig?", "Sind einige Schlangen giftig?", "scope:"),
    ("Toutes les baies sont-elles comestibles ?", "Certaines baies sont-elles comestibles ?", "scope:"),
    ("¿Todos los gatos ronronean?", "¿Algunos gatos ronronean?", "scope:"),
    ("Todas as aranhas são venenosas?", "Algumas aranhas são venenosas?", "scope:"),
]
AVAILABILITY = [
    ("Which cafes near the station are open now?", "Which cafes near the station are closed now?", ""),
    ("Which shops have the new console in stock?", "Which shops have the new console on backorder?", ""),
    (
        "Campsites in Wales with pitches free this Saturday",
        "Campsites in Wales that are fully booked this Saturday",
        "",
    ),
    ("Gibt es noch Karten für das Spiel am Samstag?", "Ist das Spiel am Samstag ausverkauft?", ""),
    ("Reste-t-il des billets pour le match de dimanche ?", "Le match de dimanche est-il complet ?", ""),
    ("¿Quedan mesas para la cena del viernes?", "¿Está completo el restaurante el viernes?", ""),
    ("Ainda há quartos para sexta-feira?", "O hotel está esgotado na sexta-feira?", ""),
]
TIME_FRAMES = [
    ("Concerts in Leeds this weekend", "Concerts in Leeds next weekend", "time_frame:"),
    ("Who won the league last season?", "Who won the league this season?", "time_frame:"),
    ("Qu'est-ce qu'il y a au cinéma ce soir ?", "Qu'est-ce qu'il y a au cinéma demain soir ?", "time_frame:"),
    ("Wetter in Köln morgen", "Wetter in Köln nächste Woche", "time_frame:"),
    ("¿Qué tiempo hará mañana en Sevilla?", "¿Qué tiempo hará la próxima semana en Sevilla?", "time_frame:"),
]
ORDERS = [
    ("List the oceans alphabetically", "List the oceans in reverse alphabetical order", "order:"),
    ("Sort the names, then remove duplicates", "Remove duplicates, then sort the names", "order:"),
    ("Sortiere die Preise aufsteigend", "Sortiere die Preise absteigend", "antonym:"),
    ("Trie les notes par ordre croissant", "Trie les notes par ordre décroissant", "antonym:"),
    ("Ordena las edades de menor a mayor", "Ordena las edades de mayor a menor", "direction:"),
    ("Ordena as idades do menor para o maior", "Ordena as idades do maior para o menor", "direction:"),
    ("Is every whale a mammal?", "Is every mammal a whale?", "order:"),
    ("Who defeated Brazil in the semifinal?", "Who did Brazil defeat in the semifinal?", "order:"),
]
# Since verify-pair-v4: the kinds of near miss verify-pair-v3 served on data/independent-3 (a direction, a unit, a
# title, an order, a superlative) and those left to the model there, written anew here in other words.
V4_DIFFERENT = [
    (
        "Wie kopiere ich Kontakte vom Tablet auf das Handy?",
        "Wie kopiere ich Kontakte vom Handy auf das Tablet?",
        "direction:",
    ),
    ("Fahrt vom Bahnhof zum Flughafen", "Fahrt vom Flughafen zum Bahnhof", "direction:"),
    ("Who directed The Birds?", "Who directed On the Birds?", "entity:"),
    ("Worst-reviewed hotels in Lisbon", "Best-reviewed hotels in Lisbon", "antonym:"),
    ("Highest-paid jobs in nursing", "Lowest-paid jobs in nursing", "antonym:"),
    ("Qual é a montanha mais alta de Portugal?", "Qual é a montanha mais baixa de Portugal?", "antonym:"),
    ("Qual é a ponte mais comprida do mundo?", "Qual é a ponte mais curta do mundo?", "antonym:"),
    ("Sind die Preise in Köln höher als in Bonn?", "Sind die Preise in Köln niedriger als in Bonn?", "antonym:"),
    (
        "Should I water the plants before or after repotting them?",
        "Should I repot the plants before watering?",
        "order:",
    ),
    ("Do I stretch before the run or after it?", "Do I run before I stretch?", "order:"),
    ("¿Cuántos mililitros tiene una cucharada?", "¿Cuántos mililitros tiene una cucharadita?", "unit:"),
    ("Combien de sel dans une cuillère à café ?", "Combien de sel dans une cuillère à soupe ?", "unit:"),
    ("Quanto fermento vai numa colher de chá?", "Quanto fermento vai numa colher de sopa?", "unit:"),
    ("Wie viel Zucker passt in einen Esslöffel?", "Wie viel Zucker passt in einen Teelöffel?", "unit:"),
    ("Is 5 mg/L too much iron in well water?", "Is 5 mmol/L too much iron in well water?", "unit:"),
    ("How long is 3 miles by boat?", "How long is 3 nautical miles by boat?", "unit:"),
    ("Bakeries open now in Leeds", "Bakeries open tomorrow in Leeds", "time_frame:"),
    ("Welche Tankstellen haben jetzt offen?", "Welche Tankstellen haben morgen offen?", "time_frame:"),
    ("¿Qué tiempo hace hoy en Bilbao?", "¿Qué tiempo hará el mes que viene en Bilbao?", "time_frame:"),
    ("Snacks that contain nuts", "Snacks that are nut-free", "negation:"),
    ("Which gyms are taking new members?", "Which gyms have stopped taking new members?", "availability:"),
    ("Which cinemas show classic films?", "Which cinemas used to show classic films?", "availability:"),
    ("Is the 7:40 ferry running today?", "Is the 7:40 ferry cancelled today?", "antonym:"),
]
V4_SAME = [
    ("What does a CPU do?", "What does a central processing unit do?"),
    ("Is an MFA worth it for painters?", "Is a Master of Fine Arts worth it for painters?"),
    ("How do I lower my LDL?", "How do I lower my low-density lipoprotein?"),
    ("When was the WHO founded?", "When was the World Health Organization founded?"),
    ("Wie reinige ich den Kühlschrank?", "Wie reinige ich das Kühlschrankgitter?"),
    ("Welche Schuhe für den Marathon?", "Welche Laufschuhe für den Marathon?"),
    ("Did the concert get cancelled because of the storm?", "Was the concert called off because of the storm?"),
]
DIRECTIONS_ABROAD = [
    ("Überweisung von meinem Sparkonto auf mein Girokonto", "Überweisung von meinem Girokonto auf mein Sparkonto"),
    ("Durée du trajet de Lyon à Marseille", "Durée du trajet de Marseille à Lyon"),
    ("¿Cuánto tarda el autobús de Sevilla a Córdoba?", "¿Cuánto tarda el autobús de Córdoba a Sevilla?"),
    (
        "Como passo os contactos do telemóvel para o computador?",
        "Como passo os contactos do computador para o telemóvel?",
    ),
    ("Converter 50 euros em reais", "Converter 50 reais em euros"),
    ("Quantas polegadas são 30 centímetros?", "Quantos centímetros são 30 polegadas?"),
]
SAME_SCOPES_AND_TIMES = [
    ("Any way to sleep on a plane?", "How can I sleep on a plane?"),
    ("What is the most efficient way to learn Spanish?", "most efficient way to learn spanish"),
    ("Why does my back hurt every morning?", "Why does my back hurt in the morning?"),
    ("Combien de temps de Lyon à Marseille en train ?", "En train, combien de temps de Lyon à Marseille ?"),
    ("Sort the scores in ascending order", "sort the scores ascending"),
]
# Reorderings that keep the meaning: a moved phrase, a list in another order, a symmetric relation.
SAME_ORDERS = [
    (
        "From the terminal on Ubuntu, how do I update all packages?",
        "How do I update all packages on Ubuntu from the terminal?",
    ),
    (
        "What is the difference between let, const and var in JavaScript?",
        "How do var, let and const differ in JavaScript?",
    ),
    ("Write a poem about the sea for a child", "For a child, write a poem about the sea"),
    ("Compare PostgreSQL and MySQL for analytics", "Compare MySQL and PostgreSQL for analytics"),
    ("In Excel, highlight duplicates in column A", "Highlight duplicates in column A in Excel"),
    (
        "In the Northern Hemisphere in winter, which constellations are visible?",
        "Which constellations are visible in winter in the Northern Hemisphere?",
    ),
    ("Python和Java的区别", "Java和Python的区别"),
]
PARAPHRASES = [
    ("How do I reverse a list in Python?", "Can you please show me how to reverse a list in Python?"),
    ("How do I sort a list in Python?", "python: how to sort a list"),
    ("pyhton list comprehension exmaple", "python list comprehension example"),
    ("how to revrese a strign in pyhton", "how to reverse a string in python"),
    ("What is the boiling point of water?", "what's water's boiling point"),
    ("What are the symptoms of the flu?", "flu symptoms"),
    ("How does photosynthesis work?", "explain photosynthesis"),
    ("best laptop for programming", "which laptop is best for programming"),
    ("tell me a joke about cats", "a joke about cats please"),
    ("How many calories are in a banana?", "calories in a banana"),
    ("Explain recursion", "What is recursion?"),
    ("what is the difference between TCP and UDP", "TCP vs UDP differences"),
    ("Comment inverser une liste en Python ?", "comment inverser une liste en python"),
    ("Wie kann ich eine Liste in Python sortieren?", "Liste in Python sortieren bitte"),
    ("¿Cómo puedo ordenar una lista en Python?", "ordenar una lista en Python"),
    ("Quelle est la capitale de l'Australie ?", "quelle est la capitale de l'Australie"),
    ("Peux-tu m'expliquer les closures en JavaScript ?", "les closures en JavaScript"),
    ("time complexity of quicksort", "time complexity of quick sort"),
    ("How do I set up SSH keys?", "walk me through setting up SSH keys"),
    ("How can I check which ports are in use?", "how do I see what ports are in use"),
]


def _check(cached: str, asked: str, expected: str) -> None:
    verdict = compare(cached, asked)
    if expected.endswith(":"):
        assert (verdict.same, verdict.kind) == (False, expected[:-1]), verdict
    else:
        assert (verdict.same, verdict.reason) == (False, expected)


@pytest.mark.parametrize(("cached", "asked", "reason"), DIFFERENT_NUMBERS + DIFFERENT_VERSIONS)
def test_numbers_units_and_versions_must_match(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), NEGATION)
def test_a_negation_on_one_side_only_differs(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), ANTONYMS)
def test_opposites_differ(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), ALTERNATIVES + PREFIX_OPPOSITES)
def test_alternatives_ordinals_and_prefixed_opposites_differ(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), LANGUAGES)
def test_languages_and_target_languages_must_match(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), ENTITIES)
def test_names_must_match(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), DIRECTIONS)
def test_a_reversed_direction_differs(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), ROLE_SWAPS)
def test_two_things_that_trade_places_differ(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), SCOPES + TIME_FRAMES + ORDERS)
def test_another_share_time_or_order_differs(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(("cached", "asked", "reason"), V4_DIFFERENT)
def test_the_kinds_verify_pair_v3_served_are_vetoed(cached: str, asked: str, reason: str) -> None:
    for a, b in ((cached, asked), (asked, cached)):
        _check(a, b, reason)


@pytest.mark.parametrize(("cached", "asked"), V4_SAME)
def test_acronyms_compounds_and_other_words_are_left_to_the_learned_verdict(cached: str, asked: str) -> None:
    """An acronym spelled out, a German noun inside a compound, "cancelled" / "called off": no veto either way
    round (the learned verdict judges them)."""
    for a, b in ((cached, asked), (asked, cached)):
        assert compare(a, b).kind not in VETOES, compare(a, b)


@pytest.mark.parametrize(("cached", "asked", "reason"), AVAILABILITY)
def test_available_and_unavailable_differ(cached: str, asked: str, reason: str) -> None:
    verdict = compare(cached, asked)
    assert not verdict.same
    assert verdict.kind in {"availability", "antonym"}, verdict


@pytest.mark.parametrize(("cached", "asked"), DIRECTIONS_ABROAD)
def test_a_reversed_direction_differs_in_german_french_spanish_and_portuguese(cached: str, asked: str) -> None:
    for a, b in ((cached, asked), (asked, cached)):
        verdict = compare(a, b)
        assert (verdict.same, verdict.kind in {"direction", "order"}) == (False, True), verdict


@pytest.mark.parametrize(("cached", "asked", "reason"), CONSTRAINTS)
def test_an_added_or_changed_constraint_differs(cached: str, asked: str, reason: str) -> None:
    _check(cached, asked, reason)


@pytest.mark.parametrize(
    ("cached", "asked"),
    SAME_NUMBERS
    + SAME_NEGATION
    + SAME_ANTONYM_WORDS
    + SAME_LANGUAGES
    + SAME_ENTITIES
    + SAME_DIRECTIONS
    + SAME_ORDERS
    + SAME_SCOPES_AND_TIMES
    + PARAPHRASES,
)
def test_paraphrases_typos_and_politeness_pass(cached: str, asked: str) -> None:
    assert compare(cached, asked) == Verdict(True, "")
    assert compare(asked, cached).same, "the verdict does not depend on which prompt is cached"


DIFFERENT = DIFFERENT_NUMBERS + DIFFERENT_VERSIONS + NEGATION + ANTONYMS + LANGUAGES + ENTITIES + DIRECTIONS
DIFFERENT += CONSTRAINTS + ALTERNATIVES + PREFIX_OPPOSITES + ROLE_SWAPS + SCOPES + TIME_FRAMES + ORDERS


@pytest.mark.parametrize(("cached", "asked", "reason"), DIFFERENT)
def test_every_difference_holds_both_ways_round(cached: str, asked: str, reason: str) -> None:
    verdict = compare(asked, cached)
    assert not verdict.same
    assert verdict.kind == reason.split(":")[0]
    assert verdict.kind in REASON_KINDS


def test_a_rewording_is_marked_and_an_added_constraint_is_not() -> None:
    reworded = compare("What are the symptoms of iron deficiency?", "What are the signs of low iron?")
    assert (reworded.same, reworded.kind, reworded.rewording) == (False, "constraint", True)
    added = compare("compute fibonacci in Python", "compute fibonacci in Python without recursion")
    assert not added.rewording, "a word on one side only narrows the request"
    scoped = compare("list files in a folder", "list only hidden files in a folder")
    assert not scoped.rewording
    assert not compare("Pythonでリストを昇順に並べ替える", "Pythonでリストを降順に並べ替える").rewording, (
        "CJK: no cosine trust"
    )


def test_text_in_scripts_without_spaces_is_compared_by_character() -> None:
    verdict = compare("Pythonでリストを昇順に並べ替える方法", "Pythonでリストを降順に並べ替える方法")
    assert (verdict.same, verdict.reason) == (False, "constraint: 昇 vs 降")
    assert compare("Pythonでリストを並べ替える", "pythonでリストを並べ替える").same


def test_identical_and_empty_prompts_are_the_same() -> None:
    assert compare("", "") == Verdict(True, "")
    assert compare("Hello there", "hello there!").same
    assert not compare("", "sort a list").same


def test_stemmer_and_typo_rules() -> None:
    assert {stem(w) for w in ("sorted", "sorting", "sorts", "sort")} == {"sort"}
    assert stem("installation") == stem("install")
    assert all(is_typo_of("python", slip) for slip in ("pyhton", "pythn", "pytjon"))
    assert not is_typo_of("getter", "setter"), "a different first letter is a different word"
    assert not is_typo_of("insert", "invert"), "s and v are not neighbouring keys"
    assert not is_typo_of("light", "night")


def test_number_words_and_glued_units_are_read() -> None:
    facts = read_prompt("two thousand five hundred and five km, 3.5kg, $20, 10k rows, a dozen eggs")
    assert facts.numbers == (3.5, 12.0, 20.0, 2505.0, 10_000.0)
    assert set(facts.units) == {"km", "kg", "USD"}


def test_a_cached_prompt_is_read_once_and_each_new_asked_prompt_once() -> None:
    """What a comparison costs is reading the asked prompt: the cached prompt's facts are read once and kept. Its
    time (about 150 us for 30 words) is measured in benches/cache/bench_semantic.py, not here."""
    cached = (
        "Could you please explain in simple terms how a hash map handles collisions in Python 3 and why resizing "
        "the table keeps lookups fast on average, with a short example using ten keys"
    )
    asked = cached.replace("ten keys", "twenty keys").replace("Could you please", "Can you")
    compare(cached, asked)
    before = read_prompt.cache_info()
    rounds = 200
    for i in range(rounds):
        assert not compare(cached, f"{asked} {i}").same  # a new asked prompt each time: read afresh
    after = read_prompt.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (rounds, rounds)


def test_matcher_serves_the_first_candidate_above_the_threshold_that_verify_accepts() -> None:
    matcher = SemanticMatcher(threshold=0.8, top_k=3)
    asked = "convert 5 km to miles"
    candidates = [
        (1, 0.99, "convert 5 miles to km"),  # the closest is a near miss
        (2, 0.95, "convert 50 km to miles"),
        (3, 0.93, "Convert five kilometres into miles please"),
        (4, 0.92, "convert 5 km to miles"),  # beyond top_k
    ]
    match = matcher.match(asked, candidates)
    assert (match.hit, match.entry_id, match.similarity) == (True, 3, 0.93)
    assert match.rejections == Counter({"direction": 1, "number": 1})
    assert match.reasons == ("direction: mi->km vs km->mi", "number: 50 vs 5"), "cached side first"


def test_matcher_misses_below_the_threshold_and_past_top_k() -> None:
    matcher = SemanticMatcher(threshold=0.8, top_k=1)
    assert not matcher.match("enable dark mode", [(1, 0.79, "enable dark mode")]).hit
    missed = matcher.match("enable dark mode", [(1, 0.95, "disable dark mode"), (2, 0.9, "enable dark mode")])
    assert (missed.entry_id, missed.similarity, dict(missed.rejections)) == (None, None, {"antonym": 1})
    assert not matcher.match("enable dark mode", []).hit


def test_rules_alone_serve_rewordings_only_when_asked_for_and_very_close() -> None:
    served = ("What is the capital of Australia?", "Which city is Australia's capital?")
    assert SemanticMatcher().accepts(*served, 0.92).same, "the learned verdict serves this rewording"
    assert not SemanticMatcher(model=None).accepts(*served, 0.92).same, "the rules alone do not"
    cached, asked = "What are the symptoms of iron deficiency?", "What are the signs of low iron?"
    assert not SemanticMatcher().accepts(cached, asked, 0.97).same, "nor this one, which verify-pair-v2 doubts"
    recall_first = SemanticMatcher(RULES_THRESHOLD, rewording_threshold=0.95, model=None)
    assert recall_first.accepts(cached, asked, 0.97).same
    assert not recall_first.accepts(cached, asked, 0.93).same
    assert not recall_first.accepts("sort a list", "sort a list without recursion", 0.99).same


@pytest.mark.parametrize(
    "arguments", [{"threshold": 1.5}, {"top_k": 0}, {"threshold": 0.8, "rewording_threshold": 0.7}]
)
def test_matcher_refuses_bad_settings(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|cosine"):
        SemanticMatcher(**arguments)  # type: ignore[arg-type]  # values under test


@pytest.mark.parametrize(
    ("cached", "asked", "reason"),
    [
        ("Is 3 < 5?", "Is 3 > 5?", "operator: < vs >"),
        ("SELECT name FROM users WHERE id = 1", "SELECT name FROM users WHERE id != 1", "operator: = vs !="),
        ("simplify x + 1 over 2", "simplify x - 1 over 2", "operator: + vs -"),
        ("what is 12 * 4", "what is 12 / 4", "operator: * vs /"),
    ],
)
def test_operators_the_words_do_not_show_must_match(cached: str, asked: str, reason: str) -> None:
    assert compare(cached, asked) == Verdict(False, reason)


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("best sci-fi books of 2020", "best sci-fi novels of 2020"),
        ("reverse a string in C++", "how to reverse a string in C++"),
        ("what is 15% of 80", "what is 15 percent of 80"),
    ],
)
def test_hyphens_slashes_and_names_with_symbols_are_not_operators(cached: str, asked: str) -> None:
    assert not compare(cached, asked).reason.startswith("operator")
