"""Banned topics: subjects a deployment should not discuss (politics for a support bot,
medical or legal advice for a shopping assistant).

``topics`` is either a list of built-in topic names (``violence``, ``weapons``,
``politics``, ``medical_advice``, ``legal_advice``, ``finance_advice``, ``drugs``,
``gambling``, ``religion``, ``adult``) or a mapping of name to keywords and phrases (an empty
list takes the built-in set of that name). Matching is on word boundaries, case- and
accent-insensitive; a trailing ``*`` makes a keyword a prefix (``vaccin*``).

The score is evidence, not a keyword hit: each built-in term has a weight (a telling phrase
such as "you should sue" weighs more than a word like "court"), distinct terms add up and
repeats add little: ``score = 1 - exp(-sum)``. One strong phrase or two or three ordinary
terms pass 0.5; a single passing mention ("the court building is on Main Street") does
not. A user's own keywords weigh 0.7 each (one hit scores 0.5): naming a keyword is a
strong statement. Findings are one per matched term, kind ``BANNED_TOPIC``, ``detail`` the
topic name, each with the topic's score (so a redact action can mask every mention).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from bastion.guards.base import Finding, ScanContext
from bastion.guards.output._match import TermMatcher, evidence_score
from bastion.guards.output._text import fold, original_span

KIND = "BANNED_TOPIC"
USER_WEIGHT = 0.7

# weight -> terms ("|"-separated); English first, the strongest terms in de/fr/es/it/nl
BUILTIN_TOPICS: dict[str, dict[float, str]] = {
    "violence": {
        0.9: "beat him up|beat her up|stab him|stab her|shoot him|shoot her|torture him"
             "|torture her|mass shooting|school shooting|massacre*|behead*|lynch*"
             "|how to kill someone|how to hurt someone|genocide*",
        0.5: "murder*|assault*|stabbing*|shooting spree|bloodshed|brutal*|slaughter*"
             "|violent*|violence|kill people|killing people|strangl*|mord*|gewalt*|meurtre*"
             "|violenc*|violenz*|asesin*|omicid*|geweld*|moord*",
        0.3: "fight*|attack*|wound*|blood|weapon*|hostage*|riot*|terror*",
    },
    "weapons": {
        0.9: "build a bomb|make a bomb|pipe bomb|3d printed gun|ghost gun|untraceable gun"
             "|convert to full auto|auto sear|bump stock|silencer for|homemade explosive*"
             "|how to make napalm|molotov cocktail*",
        0.5: "firearm*|handgun*|rifle*|shotgun*|pistol*|revolver*|ammunition|ammo|caliber"
             "|9mm|ar-15|ak-47|assault weapon*|explosive*|grenade*|detonator*|gunpowder"
             "|concealed carry|waffe|waffen|arme a feu|armes a feu|arma de fuego|armi da fuoco"
             "|vuurwapen*|munition*",
        0.3: "gun|guns|bullet*|knife|knives|sword*|holster*",
    },
    "politics": {
        0.9: "vote for|who should i vote|which party should|political party|election fraud"
             "|stolen election|left wing|right wing|left-wing|right-wing",
        0.5: "election*|democrat*|republican*|liberal*|conservative*|parliament*|congress*"
             "|senat*|president*|prime minister|campaign*|ballot*|partisan*|politic*"
             "|government*|legislat*|referendum*|immigration policy|abortion|gun control"
             "|wahl|wahlen|wahlkampf|bundestag*|landtagswahl*|regierung*|partei*|gouvernement*|eleccion*|elezion*"
             "|gobierno*|governo*|verkiezing*|regering*",
        0.3: "policy|policies|vote*|voter*|minister*|mayor*|tax|taxes|protest*",
    },
    "medical_advice": {
        0.9: "you should take|mg of|mg every|dosage|dose of|stop taking your"
             "|you have cancer|you probably have|diagnosis is|you are suffering from"
             "|prescribe*|consult a doctor|see a doctor|seek medical attention"
             "|medical advice|treatment plan",
        0.5: "symptom*|diagnos*|medication*|medicine*|antibiotic*|ibuprofen|paracetamol"
             "|acetaminophen|aspirin|insulin|chemotherapy|surgery|side effect*|prescription*"
             "|pill*|doctor*|physician*|disease*|infection*|therapy|therapist*"
             "|arzt|medikament*|krankheit*|medecin*|maladie*|medicament*|medico*"
             "|enfermedad*|malattia*|farmac*|dokter*|ziekte*|medicijn*",
        0.3: "pain|fever|cough|headache|blood pressure|health|patient*|hospital*|clinic*"
             "|nurse*|heart|cancer|diabetes|allerg*|vaccin*|virus*",
    },
    "legal_advice": {
        0.9: "you should sue|you can sue|file a lawsuit|legal advice|your legal rights"
             "|statute of limitations|plead guilty|plead not guilty|hire a lawyer"
             "|consult a lawyer|consult an attorney|breach of contract|you are liable"
             "|is it legal to|legally required",
        0.5: "lawsuit*|sue|suing|attorney*|lawyer*|litigation|liabilit*|plaintiff*"
             "|defendant*|court|courts|judge|judges|custody|divorce*|tenant rights|eviction*"
             "|copyright infringement|indemn*|settlement*|subpoena*|anwalt|anwaltin|klage"
             "|avocat*|tribunal*|abogad*|demanda*|avvocat*|tribunale|advocaat*|rechtbank*",
        0.3: "law|laws|legal|illegal|rights|police|arrest*|crime*|criminal*|fines|contract*"
             "|penalt*|regulation*|compliance",
    },
    "finance_advice": {
        0.9: "you should invest|you should buy|you should sell|investment advice"
             "|financial advice|guaranteed return*|buy the dip|price target|stock tip*"
             "|which stock*|best stock*|which crypto|portfolio allocation|get rich quick"
             "|put your savings",
        0.5: "invest*|stock|stocks|stock market|bonds|etf|etfs|index fund*|mutual fund*|dividend*"
             "|crypto*|bitcoin|ethereum|trading|trader*|forex|options trading|retirement"
             "|401k|pension*|mortgage*|interest rate*|portfolio*|hedge fund*|aktie*"
             "|investiss*|bourse|inversion*|acciones|investiment*|azioni|beleggen|aandelen",
        0.3: "money|savings|bank*|loan*|debt*|credit|market*|price*|profit*|fund|funds|shares"
             "|equity",
    },
    "drugs": {
        0.9: "how to make meth|cook meth|buy cocaine|buy heroin|where to buy drugs"
             "|get high on|drug dealer*|grow weed|synthesize mdma",
        0.5: "cocaine|heroin|methamphetamine|meth|mdma|ecstasy|lsd|psilocybin|ketamine"
             "|fentanyl|opioid*|cannabis|marijuana|overdos*|drogen|drogue*|droga*"
             "|drugs",
        0.3: "drug|weed|stoned|dealer*|pills",
    },
    "gambling": {
        0.9: "online casino*|sports betting|place a bet|betting odds|how to win at"
             "|slot machine*|gambling strateg*",
        0.5: "casino*|gambl*|betting|bookmaker*|poker|roulette|blackjack|jackpot*|lottery"
             "|wager*|gluckspiel*|wette|wetten|pari sportif|apuesta*|scommess*|gokken",
        0.3: "bet|bets|odds|win big",
    },
    "religion": {
        0.9: "which religion is true|is god real|convert to islam|convert to christianity"
             "|the true faith|infidel*",
        0.5: "religion*|religious|god|gods|allah|jesus|christian*|church*|mosque*|synagogue*"
             "|bible*|quran|koran|torah|islam*|muslim*|jewish|judaism|hindu*"
             "|buddhis*|atheis*|pray*|gott|dieu|dios|iglesia*|chiesa*|kerk*|religio*",
        0.3: "faith|belief*|spiritual*|worship*|sin|sins|heaven|hell|soul|temple*",
    },
    "adult": {
        0.9: "explicit sex*|sex scene*|porn*|pornograph*|nsfw|nude*|onlyfans|erotic*|sexting",
        0.5: "sex|sexual*|orgasm*|masturbat*|fetish*|bdsm|stripper*|xxx|horny|naked",
        0.3: "intimate|lingerie|aroused|desire|sensual*|adult|hardcore|kink*|escort*"
             "|seduc*",
    },
}


def builtin_terms(name: str) -> dict[str, list[tuple[str, float]]]:
    terms: dict[str, list[tuple[str, float]]] = {}
    for weight, joined in BUILTIN_TOPICS[name].items():
        for term in joined.split("|"):
            terms.setdefault(term, []).append((name, weight))
    return terms


class BannedTopics:
    name = "banned_topics"
    kinds = (KIND,)

    def __init__(self, topics: Mapping[str, list[str]]) -> None:
        terms: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for name, keywords in topics.items():
            if not keywords:
                for term, pairs in builtin_terms(name).items():
                    terms[term].extend(pairs)
            for keyword in keywords:
                terms[keyword].append((name, USER_WEIGHT))
        self.topics = tuple(topics)
        self._matcher = TermMatcher(terms)

    def scan(self, text: str, ctx: ScanContext) -> list[Finding]:
        folded, offsets = fold(text)
        hits = self._matcher.hits(folded)
        if not hits:
            return []
        by_topic: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for h in hits:
            by_topic[h.label][h.term].append(h.weight)
        scores = {t: round(evidence_score(terms), 3) for t, terms in by_topic.items()}
        findings = []
        for h in hits:
            start, end = original_span(offsets, h.start, h.end, len(text))
            findings.append(Finding(KIND, start, end, scores[h.label], h.label))
        return findings


def make_scanner(options: Mapping[str, Any]) -> BannedTopics:
    unknown = set(options) - {"topics"}
    if unknown:
        raise ValueError(f"banned_topics: unknown option(s) {sorted(unknown)}")
    raw = options.get("topics")
    topics: dict[str, list[str]] = {}
    if isinstance(raw, list) and raw and all(isinstance(n, str) for n in raw):
        topics = {n: [] for n in raw}
    elif isinstance(raw, Mapping) and raw:
        for name, keywords in raw.items():
            if not isinstance(name, str) or not name:
                raise ValueError("banned_topics: topic names must be non-empty strings")
            keywords = keywords or []
            if not isinstance(keywords, list) or not all(
                isinstance(k, str) and k.strip(" *") for k in keywords
            ):
                raise ValueError(f"banned_topics: topics.{name} must be a list of keywords")
            topics[name] = keywords
    else:
        raise ValueError("banned_topics: topics must be a non-empty list of built-in topic "
                         "names or a mapping of topic name to keywords")
    missing = [n for n, kws in topics.items() if not kws and n not in BUILTIN_TOPICS]
    if missing:
        raise ValueError(f"banned_topics: no built-in topic {missing}; built-in: "
                         f"{sorted(BUILTIN_TOPICS)} (or give keywords)")
    return BannedTopics(topics)
