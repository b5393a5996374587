"""Word tables for verify: stop words, fillers, negations, antonyms, units, languages, known names, synonyms.

English first, with French, German and Spanish function words and negations so a paraphrase in those languages can
still pass (what is left after stop words must match). All entries are lower case with accents removed, since the
verifier folds text the same way before it looks anything up.
"""

from __future__ import annotations

from typing import Final


def word_set(*texts: str) -> frozenset[str]:
    """The whitespace-separated words of `texts`, as a set."""
    return frozenset(" ".join(texts).split())


# --- words that carry no request of their own ------------------------------------------------------------------

STOP_WORDS: Final = word_set(
    # English function words. Not here, because a check reads them: negations, with/without, direction words
    # (to/from/into), before/after, on, more/less, only, when/where/why/who. up/down/out/off are here: mostly
    # particles ("set up", "find out"); the opposites check still sees them ("scroll up" / "scroll down").
    """a an the of in on at for by about as is are was were be been being am do does did doing done have has had
    having this that these those it its it's there their theirs they them he him his she her hers we us our ours
    you your yours i me my mine myself yourself itself and or but if then than so such what which whom whose how
    whats hows also too very just any some each every other another own same both either via per using
    can could would should will shall may might must let lets into onto upon within among whether while
    up down out off through across along around against throughout
    here there thing things something anything way ways etc eg ie vs versus between i'm im ive i've id i'd youre you're
    get got getting gets one ones""",
    # French
    """le la les l un une des du de d au aux et ou mais donc car ce cet cette ces c ca est sont etre suis es etes
    sommes ai as avons avez ont avoir je j tu il elle on nous vous ils elles me m te t se s mon ma mes ton ta tes son
    sa ses notre nos votre vos leur leurs qui que qu quoi quel quelle quels quelles dans par pour sur avec en y comme
    plus tres faire fait fais peux peut pouvez pourriez pourrais veux voudrais comment est-ce""",
    # German
    """der die das den dem des ein eine einen einem einer eines und oder aber denn dass ist sind bin bist seid war
    waren sein habe hast hat haben ich du er sie es wir ihr mich dich sich mir dir uns euch mein meine dein deine
    sein seine ihr ihre unser euer zu im am vom beim fur auf mit an als wie was welche welcher welches wer kann
    kannst konnen konnte konntest mochte will willst soll sollte bitte mal doch ja auch sehr dieser diese dieses""",
    # Spanish
    """el la los las un una unos unas de del al y o pero que es son ser estar esta estan soy eres somos hay yo tu
    el ella usted nosotros ellos ellas me te se nos le les mi mis tu tus su sus nuestro por para con en como muy mas
    cual cuales puedo puedes puede podemos pueden podrias podria quiero quisiera hacer hace este esta estos estas eso
    esto lo""",
    # Italian, Portuguese and Dutch function words: enough for a paraphrase in them to reduce to its content
    """il lo gli i una uno di da dei delle della del nel nella per con su tra fra che chi come cosa qual quale sono
    ha hanno ho si ci mi ti posso puoi puo vorrei fare""",
    """o os as um uma uns umas do da dos das no na nos nas em para com por que qual quais como e sao foi ser tem
    posso pode podes quero fazer faco eu voce meu minha quanto quanta quantos quantas ha""",
    # "how much / how many": the unit or noun after them carries the request
    """combien cuanto cuanta cuantos cuantas viel viele""",
    """de het een en van in op te met voor aan bij uit is zijn ben was waren heb heeft ik je jij u we wij hoe wat
    welke wie kan kun kunt wil mijn dit dat deze die er""",
)

FILLER_WORDS: Final = word_set(
    # Politeness, greetings and generic request words: present in one prompt and not the other, they change
    # nothing the answer must contain ("Can you please tell me..." asks what "..." asks).
    # Not here, because they narrow the answer: briefly, simple, detail, step by step, example.
    """please pls plz kindly thanks thank thx hi hello hey dear ok okay sure well um uh hmm so basically actually
    really question wondering curious anyone someone somebody guys folks help assist need needed
    required necessary want wanna like know tell show give provide explain explanation describe description
    define definition mean meaning write create make build generate produce find determine work figure out compute
    calculate calculation do possible able best good great proper properly correct correctly exactly code snippet
    program script method approach solution answer new all again now today currently usually typically generally
    normally try trying going gonna go idea ideas info information learn understand many much command instruction
    instructions formula procedure purpose recommended""",
    # French, German, Spanish politeness and request verbs
    """svp stp merci bonjour salut dis expliquer explique expliquez donner donne donnez montrer montre aide aider
    besoin voudrais veux savoir maintenant actuellement bitte danke hallo erklaren erklar erklare zeig zeige zeigen
    gib geben hilf helfen brauche mochte wissen gerade jetzt aktuell gracias hola favor explicar explica explicame
    dime decir dame mostrar muestra ayuda ayudar necesito saber ahora actualmente""",
    # Register: chat shorthand and formal padding ("I would be grateful if you could...")
    """u ur yo ugh lol pls bro dude mate grateful appreciate appreciated assistant remind hoping hope possibly
    perhaps maybe somehow kind regards sir madam btw tbh idk asap urgently share suggest recommend state""",
)

INFINITIVE_MARKERS: Final = word_set(
    # "to" after these starts an infinitive ("how to sort", "want to learn"), not a destination.
    """how way ways want wants wanted need needs needed like trying try tries going able have has had order
    possible used use wish hope learn best easiest fastest simplest quickest better easier ability able"""
)

# --- negation ---------------------------------------------------------------------------------------------------

NEGATIONS: Final = word_set(
    """not no never nothing nobody none nor neither cannot cant dont doesnt didnt isnt arent wasnt werent wont
    wouldnt shouldnt couldnt hasnt havent hadnt mustnt"""
    " ne pas jamais aucun aucune rien non"  # French ("personne" is also "person": left out)
    " nicht kein keine keinen keinem keiner keines nie niemals nichts"  # German
    " nunca jamas ningun ninguna ninguno nada tampoco"  # Spanish ("no" is above)
    " mai nessuno nessuna niente nulla nao nunca nenhum nenhuma nada"  # Italian, Portuguese
    " niet geen nooit niets"  # Dutch
)
NEGATING_PHRASES: Final = (
    ("out", "of"),
    ("hors",),
    ("fuera", "de"),
    ("fora", "de"),
    ("sold", "out"),
    ("rupture", "de"),
)
"""Polarity carried by a preposition: "in stock" / "out of stock", "en ligne" / "hors ligne", "en stock" / "fuera
de stock", "em estoque" / "fora de estoque". Not after a number: "3 out of 5" counts, it does not negate."""

# --- opposites: either word on one side and the other on the other side --------------------------------------


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for a, _, b in (pair.partition("/") for pair in text.split()))


ANTONYM_PAIRS: Final = _pairs(
    """
    enable/disable enabled/disabled activate/deactivate on/off with/without include/exclude
    increase/decrease increase/reduce raise/lower grow/shrink expand/collapse expand/shrink maximize/minimize
    add/remove add/delete add/subtract insert/delete append/remove plus/minus multiply/divide
    best/worst better/worse good/bad pros/cons advantages/disadvantages benefits/drawbacks strengths/weaknesses
    before/after earlier/later past/future yesterday/tomorrow yesterday/today today/tomorrow morning/evening
    min/max minimum/maximum smallest/largest smallest/biggest lowest/highest shortest/longest least/most less/more
    fewer/more first/last oldest/newest oldest/latest earliest/latest old/new older/newer
    ascending/descending asc/desc increasing/decreasing up/down upper/lower uppercase/lowercase top/bottom
    encrypt/decrypt encode/decode encoding/decoding compress/decompress zip/unzip serialize/deserialize
    install/uninstall import/export upload/download input/output push/pull send/receive read/write get/set
    getter/setter load/save open/close open/closed start/stop start/end begin/end show/hide lock/unlock
    connect/disconnect mount/unmount subscribe/unsubscribe follow/unfollow login/logout
    allow/deny allow/block accept/reject approve/reject agree/disagree like/dislike love/hate
    left/right horizontal/vertical above/below inside/outside internal/external inner/outer front/back
    frontend/backend client/server local/remote local/global public/private static/dynamic sync/async
    synchronous/asynchronous mutable/immutable valid/invalid legal/illegal possible/impossible safe/unsafe
    safe/dangerous healthy/unhealthy formal/informal beginner/advanced beginner/expert simple/complex easy/hard
    easy/difficult light/dark day/night white/black hot/cold warm/cold heat/cool heating/cooling wet/dry
    fast/slow faster/slower fastest/slowest short/long shorter/longer big/small large/small bigger/smaller
    wide/narrow thick/thin deep/shallow heavy/light strong/weak rich/poor cheap/expensive cheapest/expensive
    buy/sell buy/rent borrow/lend lend/borrow deposit/withdraw debit/credit income/expense profit/loss gain/loss
    win/lose winner/loser rise/fall true/false positive/negative yes/no male/female men/women boy/girl
    north/south east/west sunrise/sunset arrival/departure arrive/depart import/export prefix/suffix
    leading/trailing head/tail odd/even union/intersection merge/split join/split enter/exit inbound/outbound
    parent/child employer/employee teacher/student host/guest vowel/consonant happy/sad optimistic/pessimistic
    mean/median mean/mode median/mode sum/product sum/average acid/base high/low higher/lower highest/lowest
    over/under overcook/undercook overestimate/underestimate overweight/underweight above/under full/empty
    for/against pro/con inclusive/exclusive major/minor primary/secondary soft/hard softer/harder soft/crispy
    necessary/unnecessary required/optional mandatory/optional
    online/offline present/absent presence/absence pass/fail passed/failed success/failure succeed/fail
    alive/dead vacant/occupied aan/uit
    activer/desactiver ajouter/supprimer augmenter/diminuer avant/apres avec/sans meilleur/pire
    aktivieren/deaktivieren hinzufugen/entfernen erhohen/verringern vor/nach mit/ohne besser/schlechter
    activar/desactivar anadir/eliminar aumentar/disminuir antes/despues con/sin mejor/peor
    warmer/colder warmest/coldest cool/warm young/old younger/older youngest/oldest deepest/shallowest
    first/latest first/final earliest/last open/shut opened/closed opening/closing free/taken free/occupied
    available/sold stock/sold toxic/safe next/last next/previous next/past cheaper/dearer cheap/dear safe/risky
    arrivals/departures outward/return
    erste/letzte ersten/letzten erster/letzter heute/morgen gestern/heute gestern/morgen geoffnet/geschlossen
    offen/geschlossen offnet/schliesst vorratig/ausverkauft verfugbar/ausverkauft lieferbar/ausverkauft
    billig/teuer gunstig/teuer warm/kalt warmer/kalter alt/jung alter/junger alteste/jungste lang/kurz
    langste/kurzeste tief/flach tiefste/flachste mehr/weniger meiste/wenigste hoch/niedrig grosste/kleinste
    sicher/gefahrlich erlaubt/verboten hinflug/ruckflug hinfahrt/ruckfahrt ankunft/abfahrt kaufen/verkaufen
    premier/dernier premiere/derniere aujourd/demain hier/demain hier/aujourd ouvert/ferme ouverte/fermee
    ouvre/ferme plus/moins chaud/froid cher/abordable grand/petit long/court jeune/vieux jeune/age
    disponible/rupture stock/rupture aller/retour arrivee/depart acheter/vendre autorise/interdit
    primer/ultimo primero/ultimo primera/ultima hoy/manana ayer/hoy ayer/manana abierto/cerrado abierta/cerrada
    abre/cierra barato/caro barata/cara caliente/frio calor/frio mas/menos largo/corto joven/viejo mayor/menor
    profundo/superficial seguro/peligroso legal/ilegal permitido/prohibido ida/vuelta entrada/salida
    llegada/salida disponible/agotado disponible/agotada stock/agotado stock/agotada comprar/vender subir/bajar
    primeiro/ultimo primeira/ultima hoje/amanha ontem/hoje ontem/amanha aberto/fechado aberta/fechada abre/fecha
    barato/caro quente/frio mais/menos longo/curto jovem/velho seguro/perigoso permitido/proibido ida/volta
    chegada/partida entrada/saida estoque/esgotado disponivel/esgotado comprar/vender
    cheaper/expensive cheap/pricier cheaper/pricier cooler/warmer cooler/hotter hotter/colder current/previous
    current/past current/last gunstiger/teurer billiger/teurer kalter/warmer aktuell/vorig actuel/precedent
    actual/anterior atual/anterior aufsteigend/absteigend croissant/decroissant ascendente/descendente
    crescente/decrescente autorise/interdit autorises/interdits autorisee/interdite
    safer/riskier safer/dangerous heavier/lighter stronger/weaker richer/poorer easier/harder wetter/drier
    louder/quieter loud/quiet busy/quiet busier/quieter thicker/thinner wider/narrower allowed/forbidden
    permitted/prohibited give/receive lend/repay sicherer/gefahrlicher schneller/langsamer grosser/kleiner
    leichter/schwerer starker/schwacher senden/empfangen hochladen/herunterladen importieren/exportieren
    sur/dangereux envoyer/recevoir importer/exporter preter/emprunter televerser/telecharger
    enviar/recibir descargar/subir importar/exportar prestar/devolver enviar/receber emprestar/devolver
    melhor/pior melhores/piores maior/menor alto/baixo alta/baixa alto/bajo alta/baja mejores/peores meilleurs/pires
    meilleure/pire
    running/cancelled running/canceled comprido/curto comprida/curta hoher/niedriger mieux/pire beste/schlechteste
    besten/schlechtesten bester/schlechtester hochste/niedrigste most/fewest
    """
)
"""Since verify-pair-v2 also the opposites a reader of German, French, Spanish and Portuguese would name first
(first/last, open/closed, today/tomorrow, in stock/sold out, cheap/dear, more/less, outward/return), written from the
near misses of data/independent/verify_pairs.jsonl and widened to each language's usual words: none of them is a
rewording of the other."""

NEGATING_PREFIXES: Final = ("de", "des", "dis", "un", "in", "im", "il", "ir", "non", "anti", "counter")
"""A word and the same word behind one of these are opposites: activate/deactivate, install/uninstall,
like/dislike, aktiviere/deaktiviere. (Only when both words are in the two prompts.)"""
SWAPPED_PREFIXES: Final = (
    ("over", "under"),
    ("up", "down"),
    ("in", "out"),
    ("pre", "post"),
    ("min", "max"),
    ("auf", "ab"),
)
"""overwater/underwater, upgrade/downgrade, inbound/outbound, pretax/posttax."""

SCOPE_WORDS: Final = word_set(
    "without except excluding exclude only just exclusively solely sans sauf ohne ausser nur sin excepto solo senza"
    " solo sem apenas zonder behalve alleen"
)
"""Words that narrow a request: a rewording that adds or drops one is a different request."""


def _classes(groups: dict[str, str]) -> dict[str, str]:
    """{class: "word word ..."} as {word: class}."""
    return {word: name for name, words in groups.items() for word in words.split()}


QUANTIFIERS: Final = _classes({
    "all": """all every each everything everyone everybody alle allen alles jede jeder jedes jeden jedem samtliche
    tous toutes tout toute chaque todos todas todo toda cada""",
    "some": """some any several certain few einige einigen mancher manche manchen etliche quelques certains certaines
    plusieurs algunos algunas algun alguna alguno varios varias alguns algumas algum alguma""",
    "most": "most meisten meiste plupart mayoria maioria",
})  # fmt: skip
"""Scope: how much of a set a request is about. "Are all mushrooms poisonous?" and "Are some...", "Do all birds fly?"
and "Which birds fly?" differ in the answer; a quantifier on one side only, or two of different classes, is a veto
(verify._check_scope). "no"/"none" are negations, read there. ("aller" is French "to go" before German "all-".)"""
FREQUENCY_NOUNS: Final = word_set(
    "time times day days night nights week weeks weekend month months year years morning evening hour hours minute"
    " minutes second seconds mal tag tage woche monat jahr jahre abend morgen nacht stunde fois jour jours semaine"
    " mois an ans annee annees soir matin nuit heure vez veces dia dias semana semanas mes meses ano anos noche"
    " noches noite noites hora horas"
)
"""After "every" / "each" / "tous les" / "todos los" a quantifier is a frequency ("every night", "each month"): it
says how often, not how much of a set, and rewordings drop it freely."""

UNAVAILABLE: Final = word_set(
    """closed shut booked backorder backordered backorders unavailable sold soldout
    geschlossen ausgebucht ausverkauft vergriffen belegt ferme fermee fermes fermees complet complete epuise epuisee
    epuises cerrado cerrada cerrados cerradas agotado agotada agotados agotadas agotaron agotado agoto lleno completo
    fechado fechada fechados fechadas esgotado esgotada esgotados esgotadas esgotaram esgotou lotado lotada
    stopped formerly eingestellt"""
)
"""A thing said to be unavailable: "open" / "closed", "in stock" / "on backorder", "seats left" / "sold out",
"places" / "complet", "quedan" / "agotado"; since verify-pair-v4 also "stopped" and "used to" ("formerly":
lx.PHRASES). "Cancelled" is not one: "my flight got cancelled" is asked in other words ("scrapped") with the same
answer; "running" / "cancelled" is an opposite. One side saying it and the other not is a veto
(verify._check_availability): the answer is the complement of the other's."""

TIME_SHIFTS: Final = _classes({
    "this": "this current diese diesen dieses aktuell ce cette actuel este esta actual atual",
    "next": """next coming upcoming nachste nachsten nachstes kommende kommenden prochain prochaine prochains proximo
    proxima proximos proximas""",
    "last": """last previous past letzte letzten letztes vorige vorigen dernier derniere passe passee pasado pasada
    ultimo ultima ultimos passado passada""",
    "today": "today now heute jetzt aujourd maintenant hoy ahora hoje agora",
    "tonight": "tonight",
    "tomorrow": "tomorrow morgen demain manana amanha",
    "yesterday": "yesterday gestern hier ayer ontem",
})  # fmt: skip
"""Words that place a time ("next weekend", "last year", "ce soir" / "demain soir"). When both prompts name the same
kind of time (TIME_NOUNS) and their shifts differ, they ask about different times (verify._check_time_frame)."""
TIME_NOUNS: Final = word_set(
    """day week weekend month year season quarter night evening morning afternoon semester decade century
    tag woche wochenende monat jahr saison abend nacht quartal jahrzehnt
    jour semaine weekend mois annee an saison soir soiree nuit matin trimestre
    dia semana finde mes ano temporada noche tarde manana trimestre
    dia semana fim mes ano temporada noite tarde manha"""
)

ORDER_WORDS: Final = word_set(
    """sort sorted sorting order ordered arrange arranged rank ranked ranking list alphabetical alphabetically
    chronological chronologically sortiere sortieren sortiert ordne ordnen reihenfolge trie trier triez ordre classe
    classer ordena ordenar ordenado orden ordem classifica"""
)
REVERSAL_WORDS: Final = word_set(
    "reverse reversed reversing inverse inverted invert umgekehrt umgekehrter absteigend inverse inverso inversa"
    " inverso invertido invertida"
)
"""Beside an ordering word on both sides, a reversal on one side only is another order ("alphabetically" / "in reverse
alphabetical order"): verify._check_order_words."""
PRECEDENCE_MARKERS: Final = word_set("before after prior bevor nachdem avant apres antes despues depois")
"""Words that put one thing before another in time: "deploy the migration before the code" asks the reverse of
"deploy the code before the migration" (verify-pair-v4)."""
SEQUENCE_MARKERS: Final = word_set("then afterwards dann danach anschliessend puis ensuite luego despues depois entao")
""""Reverse the list and then append 4" / "append 4 and then reverse it": the same steps in another order."""

# --- alternatives: words of one closed set, where one replacing another always changes the answer ---------------

ALTERNATIVE_SETS: Final[tuple[frozenset[str], ...]] = tuple(
    word_set(group)
    for group in (
        "monday tuesday wednesday thursday friday saturday sunday weekday weekend",
        "january february march april may june july august september october november december",
        "spring summer autumn fall winter",
        "morning afternoon evening night midnight noon",
        "breakfast lunch dinner brunch supper",
        "red orange yellow green blue purple violet pink brown black white grey gray",
        "small medium large",
        "mother father brother sister son daughter uncle aunt grandmother grandfather wife husband",
        "mercury venus earth mars jupiter saturn uranus neptune pluto",
        "north south east west",
        "when where who whom why",
        "today tonight tomorrow yesterday",
        "daily weekly monthly quarterly yearly",
        "heute morgen gestern ubermorgen",
        "taglich wochentlich monatlich jahrlich",
        "aujourd demain hier",
        "quotidien hebdomadaire mensuel annuel",
        "hoy manana ayer",
        "diario semanal mensual anual",
        "hoje amanha ontem",
        "lundi mardi mercredi jeudi vendredi samedi dimanche",
        "montag dienstag mittwoch donnerstag freitag samstag sonntag",
        "lunes martes miercoles jueves viernes sabado domingo",
    )
)
ORDINALS: Final[dict[str, int]] = {
    "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
    "tenth": 10, "eleventh": 11, "twelfth": 12, "twentieth": 20, "hundredth": 100,
}  # fmt: skip
""""second" is also a unit after a number ("5 second delay"), read as such there; "first" is in ANTONYM_PAIRS."""
ORDINAL_SUFFIXES: Final = frozenset({"st", "nd", "rd", "th"})

# --- numbers and units ------------------------------------------------------------------------------------------

NUMBER_WORDS: Final[dict[str, int]] = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12,
    "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7, "huit": 8, "neuf": 9, "dix": 10, "vingt": 20,
    "trente": 30, "cinquante": 50, "zwei": 2, "drei": 3, "vier": 4, "funf": 5, "sechs": 6, "sieben": 7, "acht": 8,
    "neun": 9, "zehn": 10, "zwanzig": 20, "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7,
    "ocho": 8, "nueve": 9, "diez": 10, "veinte": 20,
}  # fmt: skip
"""Words read as numbers. "one"/"un"/"ein"/"uno" are left out: mostly a pronoun or an article ("which one")."""
WEAK_ONES: Final = word_set("one a an un une ein eine uno una")
"""Read as 1 only before a scale word or a unit ("a hundred", "one km")."""
SCALE_WORDS: Final[dict[str, int]] = {
    "hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000, "cent": 100, "mille": 1000,
    "hundert": 100, "tausend": 1000, "cien": 100, "ciento": 100, "mil": 1000,
}  # fmt: skip
MULTIPLIER_SUFFIXES: Final[dict[str, int]] = {"k": 1000, "m": 1_000_000, "bn": 1_000_000_000}
"""After digits only: 10k = 10000. ("m" here is a million only when it is not a unit: see AMBIGUOUS_UNITS.)"""

UNITS: Final[dict[str, str]] = {
    # length
    "km": "km", "kms": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km", "kilometres": "km",
    "mile": "mi", "miles": "mi", "meter": "m", "meters": "m", "metre": "m", "metres": "m", "cm": "cm",
    "centimeter": "cm", "centimeters": "cm", "centimetre": "cm", "centimetres": "cm", "mm": "mm",
    "millimeter": "mm", "millimeters": "mm", "foot": "ft", "feet": "ft", "inch": "in", "inches": "in",
    "yard": "yd", "yards": "yd",
    # mass
    "kg": "kg", "kgs": "kg", "kilo": "kg", "kilos": "kg", "kilogram": "kg", "kilograms": "kg", "gram": "g",
    "grams": "g", "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "ounce": "oz", "ounces": "oz", "oz": "oz",
    "ton": "t", "tons": "t", "tonne": "t", "tonnes": "t", "stone": "st",
    # temperature
    "celsius": "C", "centigrade": "C", "fahrenheit": "F", "kelvin": "K",
    # volume
    "liter": "l", "liters": "l", "litre": "l", "litres": "l", "ml": "ml", "milliliter": "ml", "milliliters": "ml",
    "gallon": "gal", "gallons": "gal", "gal": "gal", "cup": "cup", "cups": "cup", "tablespoon": "tbsp",
    "tablespoons": "tbsp", "tbsp": "tbsp", "teaspoon": "tsp", "teaspoons": "tsp", "tsp": "tsp",
    # time
    "ms": "ms", "millisecond": "ms", "milliseconds": "ms", "sec": "s", "secs": "s", "seconds": "s", "minute": "min",
    "minutes": "min", "mins": "min", "hour": "h", "hours": "h", "hr": "h", "hrs": "h", "day": "day", "days": "day",
    "week": "week", "weeks": "week", "month": "month", "months": "month", "year": "year", "years": "year",
    # speed, data, money, share
    "mph": "mph", "kmh": "km/h", "kph": "km/h", "byte": "B", "bytes": "B", "kb": "KB", "mb": "MB", "gb": "GB",
    "tb": "TB", "kib": "KiB", "mib": "MiB", "gib": "GiB", "px": "px", "pixel": "px", "pixels": "px",
    "dollar": "USD", "dollars": "USD", "usd": "USD", "$": "USD", "euro": "EUR", "euros": "EUR", "eur": "EUR",
    "€": "EUR", "gbp": "GBP", "£": "GBP", "sterling": "GBP", "yen": "JPY", "jpy": "JPY", "¥": "JPY", "inr": "INR",
    "rupee": "INR", "rupees": "INR", "percent": "%", "%": "%", "calorie": "kcal", "calories": "kcal", "kcal": "kcal",
    "degree": "deg", "degrees": "deg", "°": "deg", "°c": "C", "°f": "F",
    # the same in German, French, Spanish and Portuguese (a word that is also another word is in AMBIGUOUS_UNITS)
    "kilometro": "km", "kilometros": "km", "quilometro": "km", "quilometros": "km",
    "meilen": "mi", "meile": "mi", "milla": "mi", "millas": "mi", "milha": "mi", "milhas": "mi",
    "zentimeter": "cm", "centimetro": "cm", "centimetros": "cm", "zoll": "in",
    "pouces": "in", "pulgada": "in", "pulgadas": "in", "polegada": "in", "polegadas": "in",
    "kilogramm": "kg", "kilogramme": "kg", "kilogrammes": "kg", "kilogramo": "kg", "kilogramos": "kg",
    "quilograma": "kg", "quilogramas": "kg", "gramm": "g", "gramme": "g", "grammes": "g", "gramo": "g",
    "gramos": "g", "grama": "g", "gramas": "g", "litro": "l", "litros": "l", "galon": "gal", "galones": "gal",
    "galao": "gal", "galoes": "gal", "gallone": "gal", "gallonen": "gal", "chavena": "cup", "chavenas": "cup",
    "taza": "cup", "tazas": "cup", "cucharada": "tbsp", "cucharadas": "tbsp", "cucharadita": "tsp",
    "cucharaditas": "tsp", "mg": "mg", "mmol": "mmol", "mcg": "mcg", "nmi": "nmi", "essloffel": "tbsp", "teeloffel":
    "tsp", "grad": "deg", "grados": "deg", "graus": "deg", "franken": "CHF", "chf": "CHF",
    "francs": "CHF", "francos": "CHF", "reais": "BRL", "brl": "BRL", "dolar": "USD", "dolares": "USD",
}  # fmt: skip
AMBIGUOUS_UNITS: Final[dict[str, str]] = {
    "m": "m", "mi": "mi", "s": "s", "second": "s", "h": "h", "g": "g", "l": "l", "min": "min", "ft": "ft",
    "c": "C", "f": "F", "t": "t", "yr": "year", "yrs": "year", "wk": "week",
    "pfund": "lb", "livre": "lb", "livres": "lb", "libra": "lb", "libras": "lb", "once": "oz", "onces": "oz",
    "onza": "oz", "onzas": "oz", "unze": "oz", "pouce": "in", "tasse": "cup", "tassen": "cup", "real": "BRL",
    "peso": "MXN", "pesos": "MXN", "franc": "CHF", "franco": "CHF",
    "pint": "pt", "pints": "pt", "pinte": "pt", "pintes": "pt", "quart": "qt", "quarts": "qt",
}  # fmt: skip
"""Units only right after a number ("5 m", "10 min"); elsewhere they are words ("min of a list", "in Python")."""

# --- languages: natural (what to answer or translate into) and programming ---------------------------------

NATURAL_LANGUAGES: Final[dict[str, str]] = {
    "english": "English", "french": "French", "spanish": "Spanish", "german": "German", "italian": "Italian",
    "portuguese": "Portuguese", "dutch": "Dutch", "russian": "Russian", "chinese": "Chinese", "mandarin": "Chinese",
    "cantonese": "Cantonese", "japanese": "Japanese", "korean": "Korean", "arabic": "Arabic", "hindi": "Hindi",
    "bengali": "Bengali", "urdu": "Urdu", "turkish": "Turkish", "polish": "Polish", "swedish": "Swedish",
    "norwegian": "Norwegian", "danish": "Danish", "finnish": "Finnish", "greek": "Greek", "hebrew": "Hebrew",
    "latin": "Latin", "ukrainian": "Ukrainian", "czech": "Czech", "romanian": "Romanian", "hungarian": "Hungarian",
    "vietnamese": "Vietnamese", "thai": "Thai", "indonesian": "Indonesian", "malay": "Malay", "persian": "Persian",
    "farsi": "Persian", "swahili": "Swahili", "tagalog": "Tagalog", "catalan": "Catalan",
    "anglais": "English", "francais": "French", "espagnol": "Spanish", "allemand": "German", "italien": "Italian",
    "englisch": "English", "franzosisch": "French", "spanisch": "Spanish", "deutsch": "German",
    "italienisch": "Italian", "ingles": "English", "frances": "French", "espanol": "Spanish", "aleman": "German",
    "italiano": "Italian",
}  # fmt: skip
PROGRAMMING_LANGUAGES: Final[dict[str, str]] = {
    "python": "Python", "py": "Python", "javascript": "JavaScript", "js": "JavaScript", "typescript": "TypeScript",
    "ts": "TypeScript", "java": "Java", "c++": "C++", "cpp": "C++", "c#": "C#", "csharp": "C#", "golang": "Go",
    "rust": "Rust", "ruby": "Ruby", "php": "PHP", "swift": "Swift", "kotlin": "Kotlin", "scala": "Scala",
    "perl": "Perl", "haskell": "Haskell", "lua": "Lua", "dart": "Dart", "julia": "Julia", "matlab": "MATLAB",
    "elixir": "Elixir", "erlang": "Erlang", "clojure": "Clojure", "f#": "F#", "bash": "Bash", "shell": "Shell",
    "powershell": "PowerShell", "sql": "SQL", "html": "HTML", "css": "CSS", "fortran": "Fortran", "cobol": "COBOL",
    "vba": "VBA", "objective-c": "Objective-C", "zig": "Zig", "solidity": "Solidity", "groovy": "Groovy",
}  # fmt: skip
CASED_PROGRAMMING_LANGUAGES: Final[dict[str, str]] = {"C": "C", "R": "R", "Go": "Go", "D": "D"}
"""Single letters and common words: a language only when written with this case."""

# --- names the verifier knows in any case: tech, products, places ---------------------------------------------

KNOWN_NAMES: Final = word_set(
    """react vue angular svelte django flask fastapi rails laravel spring express nextjs node nodejs deno bun
    numpy pandas polars scipy matplotlib seaborn pytorch torch tensorflow keras sklearn scikit-learn jax spark
    hadoop kafka airflow docker kubernetes k8s helm terraform ansible jenkins git github gitlab bitbucket
    aws azure gcp linux ubuntu debian fedora centos windows macos mac ios android iphone ipad pixel galaxy chrome
    firefox safari edge excel word powerpoint outlook slack zoom teams notion jira postgres postgresql mysql
    sqlite mongodb redis elasticsearch cassandra dynamodb oracle snowflake bigquery graphql rest grpc http https
    tcp udp ssh ssl tls json yaml xml csv pdf png jpeg jpg gif svg mp3 mp4 utf-8 ascii unicode regex vim emacs
    vscode intellij pycharm xcode npm pip conda poetry cargo maven gradle webpack vite babel tailwind bootstrap
    jquery openai chatgpt gpt claude gemini llama bert google amazon microsoft apple meta netflix tesla nvidia
    intel amd samsung facebook instagram twitter tiktok youtube whatsapp telegram reddit wikipedia linkedin paypal
    stripe shopify wordpress spotify uber airbnb bitcoin ethereum""",
    # countries and a few cities (also found by capitals; listed so sentence-initial ones count too)
    """france germany spain italy portugal england britain uk ireland scotland usa america canada mexico brazil
    argentina chile peru colombia china japan korea india pakistan russia ukraine poland sweden norway denmark
    finland netherlands belgium switzerland austria australia zealand egypt nigeria kenya morocco turkey greece
    israel iran iraq vietnam thailand indonesia philippines singapore malaysia paris london berlin madrid rome
    lisbon amsterdam brussels vienna prague warsaw moscow tokyo beijing shanghai seoul delhi mumbai sydney toronto
    montreal vancouver chicago boston seattle francisco angeles york barcelona milan munich dublin dubai
    newyork newzealand newdelhi newjersey neworleans newmexico""",
)
VERSION_WORDS: Final = word_set("version versions v release python py node java ios android windows macos ubuntu php")
"""A number right after one of these (or after a capitalised name) is a version: "Python 2", "iOS 17"."""

# --- where a thing goes: "X to Y", "from X", "into Y" ------------------------------------------------------------

TARGET_MARKERS: Final = word_set("to into towards toward onto -> → a au aux al vers nach zu zum zur hacia hasta para")
"""Words whose next noun is a destination. "a" counts only in Spanish text (in English it is an article)."""
SOURCE_MARKERS: Final = word_set("from depuis desde del von vom aus")
PAIRED_SOURCE_MARKERS: Final = word_set("de du des do da dos das")
"""Source only with a destination marker a few words on ("de Paris a Rome", "do telemovel para o computador"):
alone they mean "of"."""
PAIRED_TARGET_MARKERS: Final = word_set("auf an")
"""Destination only after a source marker ("von PayPal auf mein Girokonto"): alone they mean "on"."""
CONTEXT_TARGET_MARKERS: Final = word_set("in en em")
"""Destination only before a natural language or a unit ("5 km in miles", "hello in Spanish"), else "inside"."""

# --- phrases rewritten to one word before reading ("turn on" is what "enable" is) --------------------------------

PHRASES: Final[dict[str, str]] = {
    "turn on": "enable", "switch on": "enable", "turn off": "disable", "switch off": "disable",
    "log in": "login", "sign in": "login", "log into": "login", "sign into": "login", "log out": "logout",
    "sign out": "logout", "set up": "setup", "look up": "lookup", "look for": "search", "get rid of": "remove",
    "find out": "find", "figure out": "find", "work out": "find", "come up with": "create",
    "e mail": "email", "web site": "website", "data base": "database", "capital city": "capital",
    "mac os": "macos", "new york": "newyork", "new zealand": "newzealand", "new delhi": "newdelhi",
    "new jersey": "newjersey", "new orleans": "neworleans", "new mexico": "newmexico", "node js": "nodejs",
    "node.js": "nodejs", "regular expression": "regex",
    "regular expressions": "regex", "walk me through": "explain", "go about": "", "be so kind as to": "",
    "would you mind": "", "how come": "why", "setting up": "setup", "sets up": "setup", "stand for": "mean",
    "stands for": "mean", "short for": "mean", "get used to": "accustom", "got used to": "accustom",
    "getting used to": "accustom", "used to": "formerly",
    "semana que viene": "proxima semana", "mes que viene": "proximo mes", "ano que viene": "proximo ano",
    "nautical mile": "nmi", "nautical miles": "nmi", "cuillere a soupe": "tbsp", "cuilleres a soupe": "tbsp",
    "cuillere a cafe": "tsp", "cuilleres a cafe": "tsp", "colher de sopa": "tbsp", "colheres de sopa": "tbsp",
    "colher de cha": "tsp", "colheres de cha": "tsp", "square root": "sqrt", "science fiction": "scifi",
    "sci-fi": "scifi",
    "speed up": "accelerate", "quick question": "", "for loop": "forloop", "for loops": "forloop",
    "while loop": "whileloop", "while loops": "whileloop", "do while": "dowhile",
}  # fmt: skip

# --- words that mean the same for the purpose of an answer -------------------------------------------------------

SYNONYM_GROUPS: Final[tuple[frozenset[str], ...]] = tuple(
    word_set(group)
    for group in (
        "fast quick quickly speedy rapid rapidly",
        "big large huge",
        "small little tiny",
        "car automobile",
        "buy purchase",
        "begin start",
        "finish complete",
        "bug issue problem",
        "fix repair solve resolve debug troubleshoot",
        "delete remove erase",
        "change modify alter edit update",
        "picture image photo",
        "movie film",
        "website site webpage",
        "price cost",
        "cheap inexpensive affordable",
        "learn study",
        "utilize employ",
        "count number",
        "amount quantity",
        "smart intelligent clever",
        "search look locate",
        "summary summarize summarise tldr recap",
        "kid kids child children",
        "phone smartphone cellphone",
        "tv television",
        "email e-mail",
        "folder directory",
        "dictionary dict",
        "string str",
        "integer int",
        "application app",
        "database db",
        "repository repo",
        "configuration config",
        "documentation docs",
        "doctor physician",
        "capital",
        "reverse invert",
        "combine merge",
        "concatenate concat",
        "print display",
        "list enumerate",
        "happy glad",
        "illness disease sickness",
        "ill sick",
        "sort order",
        "story tale plot storyline",
        "poem poetry",
        "check see view inspect",
        "verify validate confirm",
        "exit quit",
        "kill terminate",
        "prevent avoid",
        "store keep",
        "load read",
        "improve boost enhance raise increase",
        "tips advice suggestions recommendations hints",
        "symptoms signs",
        "largest biggest greatest",
        "smallest tiniest",
        "faster quicker accelerate",
        "frequently frequency often",
        "couch sofa",
        "transform convert conversion converter",
        "exception error",
        "recipe cook",
        "speed velocity",
        "job career",
        "synonym synonyms",
        "duplicate duplicates",
        "why reason",
        "travel trip",
        "happen occur",
        "differ difference different distinguish",
        "compare comparison",
        "cause causes",
        "function func",
        "conversion converter",
    )
)
