"""Probes written after the first corpus run, of what the corpus has few of: one-word swaps at a high cosine ("sun
rise" / "sun set", "time" / "space complexity") beside rewordings of the same prompts. Not held out: written with
verify's rules, and part of the learned verdict's training (scripts/train_verify_model.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pair:
    cached: str
    asked: str
    same: bool
    kind: str


OWN_PAIRS = [
    # same
    Pair("How do I make a hard boiled egg?", "how to hard boil an egg", True, "paraphrase"),
    Pair(
        "What is the tallest mountain in the world?", "Which mountain is the highest in the world?", True, "paraphrase"
    ),
    Pair("How do I rename a file in Linux?", "linux command to rename a file", True, "paraphrase"),
    Pair("Can you explain what an API is?", "What is an API?", True, "register"),
    Pair("What's the time complexity of quicksort?", "time complexity of quick sort", True, "paraphrase"),
    Pair("How do I create a virtual environment in Python?", "how to make a python virtualenv", True, "paraphrase"),
    Pair("How do I check my Python version?", "how can i see which python version i have", True, "paraphrase"),
    Pair(
        "What are the health benefits of green tea?",
        "Is green tea good for your health? What are its benefits?",
        True,
        "paraphrase",
    ),
    Pair("How do I merge two branches in git?", "how to merge 2 git branches", True, "paraphrase"),
    Pair("What does HTML stand for?", "what is HTML short for", True, "paraphrase"),
    Pair("Recommend a good sci-fi book", "Can you recommend a good science fiction book?", True, "register"),
    Pair(
        "How to remove duplicates from a list in Python",
        "how to remove duplicates from a python list",
        True,
        "reordered",
    ),
    Pair("Translate 'thank you' into German", "How do you say 'thank you' in German?", True, "paraphrase"),
    Pair("How do I uninstall a package with pip?", "pip uninstall a package", True, "register"),
    Pair("what is the square root of 81", "sqrt of 81", True, "register"),
    Pair(
        "How do I convert a string to lowercase in JavaScript?",
        "javascript: convert string to lower case",
        True,
        "reordered",
    ),
    Pair("what is recursion in programming", "what is recurison in programing", True, "typo"),
    Pair("How many legs does a spider have?", "how many legs do spiders have", True, "paraphrase"),
    Pair("What is the boiling point of water in Fahrenheit?", "water boiling point fahrenheit", True, "register"),
    Pair("Wie spät ist es in Tokio?", "Wie spät ist es gerade in Tokio?", True, "multilingual_same"),
    # near misses
    Pair("How do I make a hard boiled egg?", "How do I make a soft boiled egg?", False, "antonym"),
    Pair("What is the tallest mountain in the world?", "What is the tallest mountain in Europe?", False, "entity"),
    Pair("How do I rename a file in Linux?", "How do I rename a file in Windows?", False, "entity"),
    Pair("What's the time complexity of quicksort?", "What's the space complexity of quicksort?", False, "scope"),
    Pair("What's the time complexity of quicksort?", "What's the time complexity of mergesort?", False, "entity"),
    Pair("How do I merge two branches in git?", "How do I merge three branches in git?", False, "number"),
    Pair("How do I merge two branches in git?", "How do I rebase two branches in git?", False, "scope"),
    Pair("Translate 'thank you' into German", "Translate 'thank you' into Dutch", False, "language"),
    Pair("How do I install a package with pip?", "How do I uninstall a package with pip?", False, "antonym"),
    Pair(
        "How do I convert a string to lowercase in JavaScript?",
        "How do I convert a string to uppercase in JavaScript?",
        False,
        "antonym",
    ),
    Pair("what is the square root of 81", "what is the cube root of 81", False, "scope"),
    Pair("How many legs does a spider have?", "How many eyes does a spider have?", False, "scope"),
    Pair(
        "What is the boiling point of water in Fahrenheit?",
        "What is the freezing point of water in Fahrenheit?",
        False,
        "scope",
    ),
    Pair("Is it safe to eat raw eggs?", "Is it safe to eat raw chicken?", False, "scope"),
    Pair("Best time to visit Japan in spring", "Best time to visit Japan in autumn", False, "alternative"),
    Pair("What time does the sun rise on June 21?", "What time does the sun set on June 21?", False, "antonym"),
    Pair("How to sort a dictionary by value in Python", "How to sort a dictionary by key in Python", False, "scope"),
    Pair(
        "How do I read a file line by line in Python?",
        "How do I write a file line by line in Python?",
        False,
        "antonym",
    ),
    Pair("What are the pros of remote work?", "What are the cons of remote work?", False, "antonym"),
    Pair("How do I get the current date in Java?", "How do I get the current time in Java?", False, "scope"),
    Pair(
        "How to connect to a MySQL database in Python",
        "How to connect to a PostgreSQL database in Python",
        False,
        "entity",
    ),
    Pair("Who painted the Mona Lisa?", "When was the Mona Lisa painted?", False, "scope"),
    Pair("How do I lose weight fast?", "How do I gain weight fast?", False, "antonym"),
    Pair("How to print the first 10 lines of a file", "How to print the last 10 lines of a file", False, "antonym"),
    Pair("Convert 100 yen to dollars", "Convert 100 dollars to yen", False, "direction"),
    Pair("How do I center a div vertically?", "How do I center a div horizontally?", False, "antonym"),
    Pair("What is the plural of mouse?", "What is the plural of house?", False, "entity"),
    Pair(
        "Explain the causes of the French Revolution",
        "Explain the consequences of the French Revolution",
        False,
        "scope",
    ),
    Pair("How do I increase the volume on my iPhone?", "How do I mute my iPhone?", False, "scope"),
    Pair("Which is bigger, the sun or the moon?", "Which is hotter, the sun or the moon?", False, "scope"),
]
