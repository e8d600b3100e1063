"""Known attack phrasings, matched on the folded view (lower case, no accents, look-alikes
and leetspeak undone: see :mod:`normalize`), so every pattern here is plain ASCII.

Each rule is ``(name, kind, score, regex, where)``. ``where`` says for which sources the
rule applies: ``"any"``, or ``"indirect"`` for instructions addressed to an assistant that
are an attack only inside retrieved documents and tool output (in a prompt the user *is*
addressing the assistant). The scores are the rule's precision as judged on the benign
hard negatives of the training corpus: a verb plus "previous instructions" is near
certain; "stay in character" alone is not.

Languages: English, German, French, Spanish, Italian, Dutch, Portuguese.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Where = Literal["any", "indirect"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: str
    score: float
    regex: re.Pattern[str]
    where: Where = "any"
    anchors: tuple[str, ...] = ()  # empty: always run
    # a match inside a question *about* the thing ("how do I show the system prompt in the
    # playground?", "what is DAN mode?") is only a weak signal: see :func:`asked_about`
    askable: bool = False

    def search(self, view: str) -> re.Match[str] | None:
        if self.anchors and not any(a in view for a in self.anchors):
            return None
        return self.regex.search(view)

    def find(self, view: str) -> tuple[re.Match[str], bool] | None:
        """The first match that is not asked about, else the first (``True``: asked about)."""
        m = self.search(view)
        if m is None or not self.askable or not asked_about(view, m):
            return None if m is None else (m, False)
        later = self.regex.finditer(view, m.end())
        for _, other in zip(range(_MAX_RETRIES), later, strict=False):
            if not asked_about(view, other):
                return other, False
        return m, True


# A sentence that opens as a how-to or definition question ("how do I ...", "what is ...",
# "explain ...") asks about the matched phrase rather than using it. Not when the match
# names the assistant's own prompt ("your"): "how do I get you to show your rules" stays.
_ASKED = re.compile(
    r"(?:^|[.!?\n:;]\s*)(?:[\w'-]+[\s,]+){0,3}?(?:how (?:do|can|could|should|would|does|did) "
    r"(?:i|we|one|they|people|it|developers|attackers)|how to|where (?:do|can|could) (?:i|we)|"
    r"what (?:is|are|was|were|does|did)|what's|whats|explain|why (?:do|does|did|would|is)|"
    r"is (?:it possible|there a way) to|wie (?:kann|konnen|mache|macht) (?:ich|man)|"
    r"was (?:ist|bedeutet)|comment (?:puis-je|faire|on)|qu'est-ce qu|como (?:puedo|se)|que es|"
    r"come (?:posso|si)|cos'?e|hoe (?:kan|moet) (?:ik|je|men)|wat is)\b[^.!?\n]*$")
_OWN = re.compile(r"\b(?:your|you|yours|deine?n?|ton|ta|tes|tu|tus|tuo|tua|tuoi|je|jouw)\b")
_LOOKBACK = 160
_MAX_RETRIES = 4


def asked_about(view: str, m: re.Match[str]) -> bool:
    if _OWN.search(m.group(0)):
        return False
    return _ASKED.search(view, max(0, m.start() - _LOOKBACK), m.start()) is not None


def _alt(*words: str) -> str:
    return "(?:" + "|".join(words) + ")"


_GAP = r"(?:[\w'-]+[\s,]+){0,3}?"  # up to three filler words

# --- instruction override, per language -----------------------------------------------------
_EN_VERB = _alt(r"ignore", r"ignoring", r"disregard", r"forget", r"skip", r"override",
                r"overwrite", r"bypass", r"discard", r"drop", r"abandon", r"dismiss",
                r"neglect", r"set aside", r"throw (?:out|away)", r"pay no (?:attention|heed) to",
                r"do not (?:follow|obey)", r"don'?t (?:follow|obey)", r"stop (?:following|obeying)",
                r"no longer (?:follow|obey)", r"nevermind", r"never mind", r"circumvent")
_EN_ADJ = _alt(r"previous", r"prior", r"above", r"earlier", r"preceding", r"former", r"initial",
               r"original", r"old", r"existing", r"given", r"system", r"safety",
               r"developer'?s?", r"hidden", r"programmed", r"pre-?set", r"built-?in",
               r"aforementioned", r"foregoing")
_EN_OBJ = _alt(r"instructions?", r"directions?", r"directives?", r"guidelines?", r"rules?",
               r"prompts?", r"commands?", r"orders?", r"context", r"programming", r"constraints?",
               r"restrictions?", r"polic(?:y|ies)", r"guardrails?", r"filters?", r"training",
               r"configuration", r"system (?:prompt|message)", r"safeguards?", r"limitations?",
               r"protocols?", r"principles?", r"ethics", r"tasks?", r"moderation")
_EN_DET = _alt(r"all", r"any", r"every", r"each", r"of", r"the", r"your", r"these", r"those",
               r"its", r"my", r"such", r"that", r"this", r"what", r"you")

_DE_VERB = _alt(r"ignorier\w*", r"vergiss", r"vergessen sie", r"vergesst", r"missachte\w*",
                r"uberschreib\w*", r"umgeh\w*", r"verwirf", r"verwerfen sie", r"beachte\w* nicht",
                r"befolge\w* nicht", r"hebe\w*", r"setze\w*")
_DE_ADJ = _alt(r"vorherigen?", r"bisherigen?", r"obigen?", r"fruheren?", r"vorangegangenen?",
                r"alten?", r"ursprunglichen?", r"gegebenen?", r"vorigen?", r"vorstehenden?")
_DE_OBJ = _alt(r"anweisung\w*", r"instruktion\w*", r"regeln?", r"richtlinien?", r"vorgaben?",
               r"befehle?", r"anordnungen?", r"systemprompt\w*", r"prompts?", r"informationen?",
               r"aufgaben?", r"auftrage?", r"einschrankungen?", r"beschrankungen?")
_FR_VERB = _alt(r"ignore[rzs]?", r"oublie[rzs]?", r"ne (?:tiens|tenez) pas compte",
                r"fais abstraction", r"faites abstraction", r"passe[rz]? outre", r"contourne[rz]?",
                r"annule[rz]?", r"ne suis plus", r"ne suivez plus", r"efface[rz]?")
_FR_ADJ = _alt(r"precedent\w*", r"anterieur\w*", r"ci-dessus", r"initial\w*", r"d'origine",
               r"originel\w*", r"du systeme", r"systeme")
_FR_OBJ = _alt(r"instructions?", r"consignes?", r"regles?", r"directives?", r"prompts?",
               r"restrictions?", r"ordres?", r"taches?", r"indications?", r"limites?")
_ES_VERB = _alt(r"ignora\w*", r"olvida\w*", r"no hagas caso", r"no haga caso", r"descarta\w*",
                r"omite\w*", r"anula\w*", r"deja de seguir", r"salta\w*", r"desobedece\w*",
                r"elude\w*", r"evita\w*")
_ES_ADJ = _alt(r"anteriores", r"previas?", r"previos?", r"de arriba", r"iniciales",
               r"originales", r"del sistema", r"pasadas")
_ES_OBJ = _alt(r"instrucciones", r"indicaciones", r"reglas", r"directrices", r"ordenes",
               r"prompts?", r"restricciones", r"tareas?", r"normas", r"limitaciones")
_IT_VERB = _alt(r"ignora\w*", r"dimentica\w*", r"non tenere conto", r"scarta\w*", r"annulla\w*",
                r"aggira\w*", r"smetti di seguire", r"trascura\w*", r"salta\w*")
_IT_ADJ = _alt(r"precedenti", r"sopra", r"qui sopra", r"iniziali", r"originali",
               r"del sistema", r"passate")
_IT_OBJ = _alt(r"istruzioni", r"indicazioni", r"regole", r"direttive", r"ordini", r"prompts?",
               r"restrizioni", r"compiti?", r"norme", r"limitazioni")
_NL_VERB = _alt(r"negeer\w*", r"vergeet", r"vergeten", r"trek je niets aan van", r"omzeil\w*",
                r"stop met het volgen van", r"volg niet langer", r"schrap\w*")
_NL_ADJ = _alt(r"vorige", r"voorgaande", r"eerdere", r"bovenstaande", r"hierboven",
               r"oorspronkelijke", r"originele", r"oude")
_NL_OBJ = _alt(r"instructies", r"aanwijzingen", r"regels", r"richtlijnen", r"opdrachten?",
               r"prompts?", r"systeemprompt", r"beperkingen", r"bevelen", r"taak")
_PT_VERB = _alt(r"ignore\w*", r"esqueca\w*", r"desconsidere\w*", r"descarte\w*")
_PT_ADJ = _alt(r"anteriores", r"previas", r"acima", r"iniciais", r"originais")
_PT_OBJ = _alt(r"instrucoes", r"regras", r"diretrizes", r"ordens", r"prompts?", r"restricoes")


def _override(verb: str, adj: str, obj: str) -> str:
    """verb ... adjective ... object, or verb ... object ... adjective (Romance word order)."""
    return (rf"\b{verb}\b[\s,:]+{_GAP}(?:{adj}\b[\s,]+{_GAP}{obj}\b|{obj}\b[\s,]+{_GAP}{adj}\b)"
            rf"|\b{verb}\b[\s,:]+{_GAP}{obj}\b[\s,]+{adj}\b")


# consequential actions an injected instruction asks an agent to take
_ACT = (r"(?:delete|remove|wipe|erase|transfer|pay|send|forward|cancel|merge|grant|upload|"
        r"share|post|purchase|buy|book|approve|disable)\w*\b")

_RULES_SPEC: list[tuple[str, str, float, str, Where]] = [
    # override with a qualifier ("previous", "above", "system"...)
    ("override_en", "INJECTION", 0.95, _override(_EN_VERB, _EN_ADJ, _EN_OBJ), "any"),
    ("override_de", "INJECTION", 0.95, _override(_DE_VERB, _DE_ADJ, _DE_OBJ), "any"),
    ("override_fr", "INJECTION", 0.95, _override(_FR_VERB, _FR_ADJ, _FR_OBJ), "any"),
    ("override_es", "INJECTION", 0.95, _override(_ES_VERB, _ES_ADJ, _ES_OBJ), "any"),
    ("override_it", "INJECTION", 0.95, _override(_IT_VERB, _IT_ADJ, _IT_OBJ), "any"),
    ("override_nl", "INJECTION", 0.95, _override(_NL_VERB, _NL_ADJ, _NL_OBJ), "any"),
    ("override_pt", "INJECTION", 0.9, _override(_PT_VERB, _PT_ADJ, _PT_OBJ), "any"),
    # override of "your"/"all" rules without a qualifier
    ("override_your_en", "INJECTION", 0.85,
     rf"\b{_EN_VERB}\b\s+(?:all\s+(?:of\s+)?)?(?:your|all|any)\s+(?:\w+\s+)?{_EN_OBJ}\b", "any"),
    ("override_your_de", "INJECTION", 0.85,
     rf"\b{_DE_VERB}\b\s+(?:alle\s+)?(?:deine|ihre|alle|jegliche)\s+(?:\w+\s+)?{_DE_OBJ}\b", "any"),
    ("override_your_fr", "INJECTION", 0.85,
     rf"\b{_FR_VERB}\b\s+(?:toutes\s+)?(?:tes|vos|toutes les|tous les)\s+(?:\w+\s+)?{_FR_OBJ}\b",
     "any"),
    ("override_your_es", "INJECTION", 0.85,
     rf"\b{_ES_VERB}\b\s+(?:todas\s+)?(?:tus|sus|todas las|todos los)\s+(?:\w+\s+)?{_ES_OBJ}\b",
     "any"),
    ("override_your_it", "INJECTION", 0.85,
     rf"\b{_IT_VERB}\b\s+(?:tutte\s+)?(?:le tue|le sue|tutte le|tutti i)\s+(?:\w+\s+)?{_IT_OBJ}\b",
     "any"),
    ("override_your_nl", "INJECTION", 0.85,
     rf"\b{_NL_VERB}\b\s+(?:al\s+)?(?:je|jouw|uw|alle)\s+(?:\w+\s+)?{_NL_OBJ}\b", "any"),
    # "forget everything above / you were told"
    ("forget_everything_en", "INJECTION", 0.85,
     r"\b(?:forget|ignore|disregard)\s+(?:about\s+)?(?:everything|anything|"
     r"all(?: of)? (?:that|this|the above))"
     r"\s+(?:(?:that\s+)?(?:you\s+(?:were|have been|got)\s+(?:told|given|said)|above|before|"
     r"prior|previously|so far|until now|i (?:said|told you)|we discussed|said (?:above|before)))",
     "any"),
    ("forget_everything_de", "INJECTION", 0.85,
     r"\b(?:vergiss|vergessen sie|ignoriere\w*)\s+alles\b(?:\s*,)?\s+"
     r"(?:was|oben|bisher|vorher|zuvor|"
     r"davor|bisherige)", "any"),
    ("forget_everything_fr", "INJECTION", 0.85,
     r"\b(?:oublie[rz]?|ignore[rz]?)\s+tout\s+(?:ce qu|ce qui precede|ce que|le reste)", "any"),
    ("forget_everything_es", "INJECTION", 0.85,
     r"\b(?:olvid\w*|ignor\w*)\s+todo\s+(?:lo\s+(?:anterior|que|de arriba)|lo dicho|que "
     r"(?:digo|dije|te dije|sabes))", "any"),
    ("forget_everything_it", "INJECTION", 0.85,
     r"\b(?:dimentica\w*|ignora\w*)\s+tutto\s+(?:quello|quanto|cio|il resto)", "any"),
    ("forget_everything_nl", "INJECTION", 0.85,
     r"\b(?:vergeet|negeer)\s+alles\s+(?:wat|hierboven|hiervoor|tot nu toe|eerder)", "any"),
    # the earlier instructions declared void
    ("void_en", "INJECTION", 0.9,
     rf"\b(?:(?:{_EN_ADJ}|your|all)\s+(?:\w+\s+)?{_EN_OBJ}|{_EN_OBJ}\s+(?:above|before this))\s+"
     r"(?:(?:are|were|is|have been|has been)\s+)?"
     r"(?:now\s+)?(?:no longer|not|null|void|cancell?ed|revoked|irrelevant|invalid|obsolete|"
     r"deprecated|replaced|lifted|suspended|overridden|removed|disabled|a test)\b", "any"),
    ("void_de", "INJECTION", 0.9,
     rf"\b(?:{_DE_ADJ}|alle|deine)\s+(?:\w+\s+)?{_DE_OBJ}\s+(?:sind|gelten|waren)\s+(?:\w+\s+)?"
     r"(?:irrelevant|ungultig|nicht mehr|aufgehoben|hinfallig|nichtig)", "any"),
    ("void_romance", "INJECTION", 0.85,
     r"\b(?:tes|vos|les|tus|las|le tue|le|je|de)\s+(?:instructions|consignes|instrucciones|"
     r"istruzioni|instructies)\s+(?:precedentes|anteriores|previas|precedenti|vorige)?\s*"
     r"(?:ne sont plus|"
     r"ya no son|non sono piu|zijn niet meer)", "any"),
    ("forget_and_say", "INJECTION", 0.8,
     r"\b(?:forget|ignore|disregard)\s+(?:about\s+)?(?:everything|all|(?:the\s+)?above)"
     r"(?:\s+you know)?"
     r"\s*[,.!:;-]*\s*"
     r"(?:and\s+)?(?:now\s+)?(?:just\s+|only\s+)?(?:write|say|output|print|tell|answer|reply|"
     r"respond|repeat|type|focus)\b|\bvergiss\s+alles\s*[,.!:;-]*\s*(?:und\s+)?(?:jetzt\s+)?"
     r"(?:schreib\w*|sag\w*|gib|antworte\w*)\b|\b(?:olvida\w*|oublie\w*|dimentica\w*|vergeet)\s+"
     r"(?:todo|tout|tutto|alles)\s*[,.!:;-]*\s*(?:y|et|e|en)?\s*(?:escribe|di|dis|ecris|scrivi|"
     r"zeg|schrijf)\b", "any"),
    ("leave_behind_de", "INJECTION", 0.8,
     r"\b(?:vorherigen|bisherigen|obigen|fruheren)\s+(?:informationen|anweisungen|aufgaben)\s+"
     r"(?:hinter\s+(?:sich|dir|euch)|beiseite)|\babweichend\s+(?:zu|von)\s+(?:den\s+)?"
     r"(?:vorherigen|bisherigen|obigen)\s+(?:anweisungen|instruktionen|vorgaben)", "any"),
    ("instructions_are_now", "INJECTION", 0.75,
     r"\byour (?:new )?instructions are now\b|\bnow new (?:instructions|tasks) follow\b|"
     r"\bnun folgen (?:neue|weitere) (?:anweisungen|aufgaben)\b", "any"),
    ("new_instructions", "INJECTION", 0.5,
     r"\b(?:new|updated|real|actual|neue|nouvelles|nuevas|nuove|nieuwe)\s+(?:instructions?|rules|"
     r"task|anweisungen|regeln|aufgabe|consignes|instrucciones|istruzioni|instructies)"
     r"(?:\s+from\s+(?:the\s+)?\w+)?\s*:", "any"),
    ("your_new_task", "INJECTION", 0.7,
     r"\byour (?:new|only|real|true) (?:task|goal|job|purpose|role|instructions?|mission) "
     r"(?:is|are|now|from now)", "any"),
    ("change_instructions", "INJECTION", 0.8,
     r"\bchange your (?:instructions|rules|programming|behaviou?r) to\b|\bandere deine "
     r"anweisungen\b", "any"),
    ("hijack_say", "INJECTION", 0.5,
     r"\b(?:now|instead|stattdessen|jetzt|maintenant|ahora|ora|nu)\b[\s,:]+(?:just\s+|only\s+|nur\s+)?"
     r"(?:say|print|write|output|respond with|reply with|answer with|sag|schreib\w*|gib|dis|ecris|"
     r"di|escribe|scrivi|zeg|schrijf)\b\s*[:\"'`]", "any"),
    ("stop_write", "INJECTION", 0.6,
     r"(?:^|[.!?\n]\s*)(?:stop|stopp|halt|alto)\s*[-:!.,]+\s*(?:now\s+)?(?:write|say|print|"
     r"schreibe?|sag|ecris|escribe|scrivi|schrijf)\b", "any"),
    # system prompt and secret extraction
    ("extract_prompt_en", "INJECTION", 0.9,
     r"\b(?:reveal|show|print|output|display|repeat|tell|give|share|leak|dump|disclose|list|"
     r"recite|spell out|write out|summari[sz]e|translate|paste|return|provide|expose|copy)\b"
     r"\s+(?:me\s+|us\s+)?(?:\w+\s+){0,2}?(?:(?:your|the|this bot'?s|the assistant'?s)\s+"
     r"(?:\w+\s+)?(?:system\s+(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|"
     r"full|complete|exact|internal|pre|first|underlying|confidential|developer)[\s-]*"
     r"(?:prompt|instructions|rules|configuration|message)|pre-?prompt)|your\s+(?:\w+\s+)?"
     r"(?:prompt|instructions|rules|configuration|guidelines))\b", "any"),
    ("disable_safety", "JAILBREAK", 0.8,
     r"\b(?:disable|turn off|deactivate|switch off|remove|bypass|lift)\s+(?:all\s+)?(?:of\s+)?"
     r"(?:your|the)\s+(?:safety|content|moderation|ethical|security)\s+(?:filters?|guidelines|"
     r"rules|protocols|polic(?:y|ies)|restrictions|checks|settings)", "any"),
    ("what_system_prompt", "INJECTION", 0.85,
     r"\bwhat (?:is|are|was|were|'s) (?:your (?:\w+\s+)?(?:instructions|prompt|rules|guidelines)|"
     r"(?:your|the) (?:\w+\s+)?(?:system\s+prompt|initial instructions|original instructions|"
     r"hidden instructions|secret instructions|pre-?prompt))\b", "any"),
    ("repeat_above", "INJECTION", 0.85,
     r"\b(?:repeat|print|output|copy|show|reproduce|echo|recite)\s+(?:back\s+)?(?:all\s+)?(?:of\s+)?"
     r"(?:the\s+)?(?:text|words|everything|content|contents|all|lines|messages?|conversation)"
     r"\s+(?:\w+\s+){0,2}?(?:above|before this|prior to this|preceding|of your context|"
     r"in your context|of your prompt)", "any"),
    ("starting_with_you_are", "INJECTION", 0.8,
     r"\b(?:starting|beginning|begin|start)\s+(?:with|from)\s+['\"]?you are\b", "any"),
    ("what_were_you_told_before", "INJECTION", 0.8,
     r"\bwhat (?:were|have) you (?:been )?(?:told|instructed|programmed|given)\b.{0,30}\b(?:before|"
     r"prior to|at the start of) (?:this|the|our) (?:conversation|chat|session|dialog)", "any"),
    ("repeat_above_ml", "INJECTION", 0.8,
     r"\b(?:herhaal|repite|repete|ripeti|wiederhole)\w*\s+(?:\w+\s+){0,3}(?:tekst|texto|texte|"
     r"testo|text)\s+(?:\w+\s+){0,3}(?:boven|encima|au-dessus|sopra|uber|oberhalb)", "any"),
    ("pretend_no_rules_ml", "JAILBREAK", 0.75,
     r"\b(?:tu so|stell dir vor|fais comme si|imagine|finge|fingi|immagina|doe alsof|stel je voor)"
     r"\b.{0,60}\b(?:keine|ohne|sans|aucune|sin|ningun\w*|senza|nessun\w*|geen|zonder)\s+(?:\w+\s+)?"
     r"(?:regeln|richtlinien|inhaltsrichtlinien|moral|regles|morale|reglas|regole|regels|moraal|"
     r"restrictions?|filter\w*)\b", "any"),
    ("what_were_you_told", "INJECTION", 0.45,
     r"\bwhat (?:were|have) you (?:been )?(?:told|instructed|programmed|given)\b", "any"),
    ("password_reveal", "INJECTION", 0.55,
     r"(?<!never )(?<!not )(?<!n't )\b(?:reveal|tell me|give me|spell|what(?: is|'s)|leak|print|"
     r"say|encode|hint)\b"
     r"(?:\s+\w+){0,3}\s+(?:the|your)\s+(?:secret\s+)?(?:password|passphrase|secret (?:word|key|"
     r"code)|api key)\b(?!\s+(?:to|for|of|on|in|policy|policies|manager|reset|requirements?|"
     r"strength|rules))",
     "any"),
    ("extract_prompt_de", "INJECTION", 0.8,
     r"\b(?:zeig\w*|gib|nenne?\w*|verrat\w*|wiederhole?\w*|wie lautet|was ist)\s+(?:mir\s+)?"
     r"(?:\w+\s+)?(?:deinen?|den|dein|ihren?|das)\s+(?:\w+\s+)?(?:systemprompt|system-prompt|"
     r"prompt|anweisungen|passwort|geheimnis|konfiguration)\b", "any"),
    ("extract_prompt_fr", "INJECTION", 0.9,
     r"\b(?:montre|affiche|revele|donne|repete|quel est|quelles sont|dis)\w*(?:-moi)?\s+(?:moi\s+)?"
     r"(?:\w+\s+(?:et\s+)?)?(?:ton|ta|tes|vos|votre)\s+(?:\w+\s+)?(?:prompt|instructions|mot de "
     r"passe|consignes)\b",
     "any"),
    ("extract_prompt_es", "INJECTION", 0.9,
     r"\b(?:muestra|revela|dame|ensena|repite|cual es|cuales son|dime)\w*\s+(?:\w+\s+)?"
     r"(?:tu|tus)\s+"
     r"(?:\w+\s+)?(?:prompt|instrucciones|contrasena)\b", "any"),
    ("extract_prompt_it", "INJECTION", 0.9,
     r"\b(?:mostra|rivela|dammi|ripeti|qual e|quali sono|dimmi)\w*\s+(?:\w+\s+)?(?:il tuo|le tue|"
     r"la tua)\s+(?:\w+\s+)?(?:prompt|istruzioni|password)\b", "any"),
    ("extract_prompt_nl", "INJECTION", 0.9,
     r"\b(?:laat|toon|geef|herhaal|wat is|wat zijn|verklap)\s+(?:me\s+)?(?:\w+\s+)?(?:je|jouw)\s+"
     r"(?:\w+\s+)?(?:systeemprompt|prompt|instructies|wachtwoord)\b", "any"),
    # fake roles and delimiters
    ("chatml", "INJECTION", 0.9, r"<\|im_start\|>\s*system|<\|(?:system|im_sep)\|>", "any"),
    ("llama_sys", "INJECTION", 0.8, r"<<\s*sys\s*>>|\[/?inst\]", "any"),
    ("fake_role_tag", "INJECTION", 0.5, r"</?\s*(?:system|admin|developer)\s*>", "any"),
    ("fake_system_line", "INJECTION", 0.45,
     r"(?:^|\n)\W{0,6}(?:system|admin|administrator|developer|root)(?:\s+(?:message|override|"
     r"notice|prompt))?\W{0,6}\s*[:\]]\s+\w", "any"),
    ("override_banner", "INJECTION", 0.8,
     r"\b(?:system|admin|security|safety)\s+(?:override|mode|protocols?)\b.{0,40}\b(?:disabled|"
     r"off|enabled|void|activated)\b|\bsystem override\b|\b(?:filters?|safety|moderation|"
     r"guardrails?)\s*[:=]\s*(?:off|disabled|false|none|0)\b", "any"),
    ("end_of_prompt", "INJECTION", 0.45,
     r"\bend of (?:the )?(?:user |system )?(?:input|prompt|instructions|conversation)\b", "any"),
    ("decode_and_follow", "INJECTION", 0.6,
     r"\b(?:decode|decipher|reverse|rot13|read (?:this|it) backwards|apply rot13|base64-decode)\b"
     r".{0,40}\b(?:follow|execute|obey|do (?:it|what it says)|act on|perform|run|befolge)\b",
     "any"),
    ("concat_execute", "INJECTION", 0.6,
     r"\b(?:concatenate|combine|join)\b.{0,60}\b(?:execute|follow|obey|do what it says|act on)\b"
     r"|\bexecute\s*\w*\(\s*[a-z]\s*\)", "any"),
    # jailbreak personas and modes
    ("dan", "JAILBREAK", 0.9,
     r"\b(?:can\s+)?do anything now\b(?!\s*,?\s*or\b)|\bdan\s+mode\b|\bact(?:ing)? as (?:a )?dan\b",
     "any"),
    ("developer_mode", "JAILBREAK", 0.85,
     r"\b(?:dan|god|sudo|jailbreak|unrestricted|uncensored|unfiltered|opposite|evil|chaos)\s+mode\b"
     r"|\bdeveloper mode\s+(?:is\s+)?(?:enabled|activated|output|response)|\b(?:enable|activate|"
     r"enter|simulate|with)\s+developer mode\b|\bentwicklermodus (?:aktiviert|an)\b|\bmode "
     r"developpeur (?:active|enclenche)\b|\bmodo desarrollador activado\b|\bmodalita "
     r"sviluppatore attivata\b|\bontwikkelaarsmodus ingeschakeld\b", "any"),
    ("jailbreak_tag", "JAILBREAK", 0.9, r"\[\W*jailbreak\]|\bjailbroken\b|\bjailbreak mode\b",
     "any"),
    ("unrestricted_ai", "JAILBREAK", 0.85,
     r"\b(?:an?|the|as)\s+(?:\w+\s+)?(?:unrestricted|unfiltered|uncensored|unlimited|unbound|"
     r"amoral|unethical|evil|rogue|jailbroken|lawless)\s+(?:ai|assistant|chatbot|model|bot|"
     r"version|language model|persona|system)\b", "any"),
    ("ai_without_limits", "JAILBREAK", 0.8,
     r"\b(?:ai|ia|ki|assistant|chatbot|model|bot|you|du|tu)\b\s+(?:\w+\s+){0,3}?(?:without|with no|"
     r"free of|has no|have no|ohne|sans|sin|senza|zonder|die keine|keine)\s+(?:any\s+|jegliche\s+|"
     r"aucune\s+|ninguna\s+|alcuna\s+|enige\s+)?(?:\w+\s+(?:or\s+|and\s+)?){0,2}(?:restrictions?|filters?|limits?|limitations?|"
     r"censorship|rules|guidelines|morals?|ethics|boundaries|content polic(?:y|ies)|"
     r"einschrankungen|regeln|filter|restrictions?|filtres?|regles|restricciones|filtros|reglas|"
     r"restrizioni|filtri|regole|beperkingen|regels)\b", "any"),
    ("no_ethics", "JAILBREAK", 0.85,
     r"\b(?:does ?n[o']?t|do ?n[o']?t|never|won'?t|will not|doesn'?t have to)\s+(?:\w+\s+)?(?:care "
     r"about|follow|abide by|adhere to|respect|obey|comply with)\s+(?:any\s+)?(?:\w+\s+)?(?:ethics|"
     r"ethical|morals?|laws|content polic(?:y|ies)|openai|guidelines|safety|rules set)", "any"),
    ("never_refuse", "JAILBREAK", 0.7,
     r"\b(?:never|not|cannot|can'?t|won'?t)\s+(?:ever\s+)?refuse(?:s)?\b|\bwithout (?:ever )?"
     r"refusing\b|\bohne abzulehnen\b|\bsans refuser\b|\bsin negarte\b|\bsenza rifiutare\b|"
     r"\bzonder te weigeren\b", "any"),
    ("stay_in_character", "JAILBREAK", 0.4, r"\bstay in character\b|\bbreak(?:ing)? character\b",
     "any"),
    ("dual_answer", "JAILBREAK", 0.75,
     r"\b(?:answer|respond|reply)\s+(?:\w+\s+){0,3}(?:in two (?:ways|different ways)|as both)\b",
     "any"),
    ("token_threat", "JAILBREAK", 0.75,
     r"\btokens?\b.{0,60}\b(?:deducted|lose|run out)\b|\bcease to exist\b", "any"),
    ("pretend_no_policy", "JAILBREAK", 0.8,
     r"\b(?:pretend|imagine|hypothetically|suppose|act as if|as if)\b.{0,60}\b(?:no|without|don'?t "
     r"have|turned off|disabled)\s+(?:any\s+)?(?:content polic(?:y|ies)|safety|filters?|"
     r"restrictions|guidelines|rules|morals)\b", "any"),
    ("evil_persona", "JAILBREAK", 0.7,
     r"\b(?:pretend|act|roleplay|role-play|behave|play)\b.{0,30}\b(?:evil|malicious|unethical|"
     r"amoral|criminal|hacker with no)\b.{0,20}\b(?:ai|assistant|bot|chatbot|with no morals)\b",
     "any"),
    ("grandma_exploit", "JAILBREAK", 0.6,
     r"\b(?:deceased|late|dead)\s+grand(?:ma|mother|pa|father)\b.{0,80}\b(?:napalm|recipe|keys|"
     r"steps|how to)", "any"),
    # addressed to an assistant inside a document or tool output
    ("if_you_are_ai", "INJECTION", 0.85,
     r"\b(?:if|when|once|whenever)\s+(?:you\s+are|you'?re)\s+(?:an?\s+)?(?:\w+\s+)?(?:ai|a\.i\.|"
     r"llm|language model|assistant|chatbot|bot|gpt|chatgpt|claude|gemini|copilot|agent)\b"
     r"|\bwenn du (?:eine )?ki bist\b|\bsi tu es une ia\b|\bsi eres una ia\b|\bse sei un'?ia\b|"
     r"\bals je een ai bent\b", "any"),
    ("note_to_ai", "INJECTION", 0.8,
     r"\b(?:note|message|instructions?|notice|reminder|attention|important|urgent|hinweis|"
     r"wichtig|nota|opmerking)\s+(?:to|for|an|fur|pour|para|per|voor)\s+(?:the\s+|any\s+|all\s+|"
     r"every\s+|jedes\s+|den\s+|tout\s+|cualquier\s+|qualsiasi\s+|elk\s+)?"
     # "a system message for a bot that helps students" is a request, not a note to one
     r"(?!(?:a|an|un|une|una|uno|ein|eine|einen|een)\s)(?:[a-z-]+\s+)?"
     r"(?:ai|ki|ia|llm|language model|assistant|agent|chatbot|bot|sprachmodell|ki-assistent\w*|"
     r"modele de langage|modelo de lenguaje|modello linguistico|taalmodel)s?\b",
     "any"),
    ("ai_reading_this", "INJECTION", 0.8,
     r"\b(?:ai|llm|language models?|assistant|agents?|bots?|chatgpt|copilot)\s+(?:\w+\s+){0,3}?"
     r"(?:reading|processing|summari[sz]ing|parsing|that reads|who reads|reads)\s+(?:this|the)\b",
     "any"),
    ("ai_vocative", "INJECTION", 0.65,
     r"(?:^|[\n.!>\-\[(]\s*)(?:dear\s+|hey\s+|hi\s+)?(?:ai|ai assistant|assistant|llm|chatbot|"
     r"chatgpt|copilot|claude|gemini|agent|ki-assistent|assistant ia|asistente de ia|"
     r"assistente ia|ai-assistent)\s*[,:]\s*(?:please\s+)?(?:(?:when|while|if|after|before|as)\b"
     r"[^.\n]{0,60}?,\s*)?(?:ignore|disregard|forget|do not|"
     r"don'?t|stop|you must|you should|send|forward|reply|respond|tell|call|include|append|"
     r"delete|run|ignoriere|vergiss|ignore|ignora|negeer|leite|sende|envoie|envia|invia|stuur)",
     "indirect"),
    ("assistant_must", "INJECTION", 0.75,
     r"\bthe (?:ai|assistant|model|llm|agent|chatbot)\s+(?:must|should|shall|has to|is "
     r"required to|will now)\s+(?:now\s+)?(?:secretly\s+)?(?:ignore|disregard|send|forward|"
     r"include|reply|respond|tell|say|call|append|stop|output|reveal|delete|praise|recommend|"
     r"rate)", "indirect"),
    ("exfiltrate", "INJECTION", 0.85,
     r"\b(?:send|forward|post|upload|exfiltrate|leak|transmit|email|e-mail|include|append|"
     r"sende|leite|envoie|transfere|envia|reenvia|invia|inoltra|stuur)\w*\s+(?:\w+\s+){0,6}?"
     r"(?:conversation|chat history|history|emails?|e-mails?|data|credentials|passwords?|api "
     r"keys?|tokens?|gesprachsverlauf|historique|historial|cronologia|gespreksgeschiedenis|"
     r"e-mails)\b.{0,60}?(?:https?://|\b\S+@\S+\.\w+)", "any"),
    ("markdown_exfil", "INJECTION", 0.75,
     r"!\[[^\]]*\]\(https?://[^)\s]*\?[^)\s]*(?:\{|%7b|\$\(|<)", "any"),
    ("pipe_shell", "INJECTION", 0.6, r"\bcurl\s+\S+\s*\|\s*(?:ba|z)?sh\b", "indirect"),
    ("hidden_instruction_block", "INJECTION", 0.8,
     r"\b(?:begin|start)\s+(?:ai|llm|assistant|hidden|secret)\s+instructions\b|\[system\]\(#",
     "any"),
    # an agent told to act through its tools: a consequential verb and "the X tool"
    ("tool_action", "INJECTION", 0.7,
     rf"\b(?:use|using|call|invoke|via|with|through)\s+(?:the\s+|your\s+)?[\w-]+\s+(?:tool|"
     rf"function|plugin|integration)\b[^.\n]{{0,80}}?\b{_ACT}|\b{_ACT}[^.\n]{{0,80}}?\b(?:using|"
     r"with|via|through)\s+(?:the\s+|your\s+)?[\w-]+\s+(?:tool|function|plugin|integration)\b",
     "indirect"),
    # an action to be kept from the person the assistant works for
    ("hide_from_user", "INJECTION", 0.7,
     r"\b(?:do not|don'?t|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|notify(?:ing)?|"
     r"alert(?:ing)?|warn(?:ing)?|mention(?:ing)?\s+(?:this|it|that)\s+to)\s+the\s+user\b",
     "indirect"),
    # a markdown image or link whose query is a placeholder for data to fill in
    ("beacon_placeholder", "INJECTION", 0.75,
     r"!?\[[^\]\n]*\]\(\s*https?://[^)\s]*\?[^)\s]*=\s*(?:\{|%7b|\$[a-z_(]|\[|<|%3c)",
     "indirect"),
    # a header line that announces a system or developer message inside a document
    ("fake_system_header", "INJECTION", 0.6,
     r"(?:^|\n)[ \t]*(?:[#=*\[<(\"'/-]{1,6}[ \t]*){1,2}(?:system|developer|admin)[ \t]+(?:message|"
     r"prompt|instructions?|override|notice)[ \t]*[#=*\]>):-]{0,6}[ \t]*(?:\n|$)"
     r"|#{2,}[ \t]*(?:system|developer|admin)[ \t]+(?:message|prompt|instructions?)[ \t]*#{2,}",
     "indirect"),
    ("tool_call_injection", "INJECTION", 0.7,
     r"\b(?:call|invoke|use|run)\s+the\s+\w+\s+(?:tool|function)\b.{0,60}\bbefore (?:replying|"
     r"answering|responding)\b", "indirect"),
]

# Literal substrings at least one of which every match of the rule contains: a rule whose
# anchors are all absent is skipped without running its regular expression (``in`` on a
# string is far cheaper than a regex scan that must try every position).
_EN_V = ("ignor", "disregard", "forget", "skip", "overrid", "overwrit", "bypass", "discard",
         "drop", "abandon", "dismiss", "neglect", "set aside", "throw", "pay no", "follow",
         "obey", "never", "circumvent")
_DE_V = ("ignorier", "vergiss", "vergessen", "vergesst", "missacht", "uberschreib", "umgeh",
         "verwirf", "verwerfen", "beacht", "befolg", "hebe", "setze")
_FR_V = ("ignor", "oubli", "compte", "abstraction", "outre", "contourn", "annul", "suis plus",
         "suivez plus", "effac")
_ES_V = ("ignora", "olvida", "caso", "descarta", "omite", "anula", "deja de", "salta",
         "desobedece", "elude", "evita")
_IT_V = ("ignora", "dimentica", "tenere conto", "scarta", "annulla", "aggira", "smetti",
         "trascura", "salta")
_NL_V = ("negeer", "vergeet", "vergeten", "trek je", "omzeil", "stop met", "volg niet", "schrap")
ANCHORS: dict[str, tuple[str, ...]] = {
    "override_en": _EN_V, "override_your_en": _EN_V,
    "override_de": _DE_V, "override_your_de": _DE_V,
    "override_fr": _FR_V, "override_your_fr": _FR_V,
    "override_es": _ES_V, "override_your_es": _ES_V,
    "override_it": _IT_V, "override_your_it": _IT_V,
    "override_nl": _NL_V, "override_your_nl": _NL_V,
    "override_pt": ("ignore", "esquec", "desconsider", "descart"),
    "forget_everything_en": ("forget", "ignore", "disregard"),
    "forget_everything_de": ("vergiss", "vergessen", "ignorier"),
    "forget_everything_fr": ("oubli", "ignor"), "forget_everything_es": ("olvid", "ignor"),
    "forget_everything_it": ("dimentica", "ignora"), "forget_everything_nl": ("vergeet", "negeer"),
    "void_en": (" are", " were", " is", " have been", " has been", "removed", "disabled"),
    "void_de": ("sind", "gelten", "waren"),
    "void_romance": ("ne sont plus", "ya no son", "non sono piu", "zijn niet meer"),
    "forget_and_say": ("forget", "ignore", "disregard", "vergiss", "olvida", "oublie",
                       "dimentica", "vergeet"),
    "leave_behind_de": ("hinter", "beiseite", "abweichend"),
    "instructions_are_now": ("instructions are now", "follow", "nun folgen"),
    "new_instructions": (":",), "your_new_task": ("your ",), "change_instructions": ("change your",
                                                                                    "andere deine"),
    "hijack_say": ("now", "instead", "stattdessen", "jetzt", "maintenant", "ahora", "ora", "nu"),
    "stop_write": ("stop", "halt", "alto"),
    "extract_prompt_en": ("prompt", "instruction", "rules", "configuration", "message",
                          "guidelines"),
    "disable_safety": ("safety", "content", "moderation", "ethical", "security"),
    "what_system_prompt": ("what",), "repeat_above": ("above", "before this", "prior to this",
                                                      "preceding", "context", "of your prompt"),
    "starting_with_you_are": ("you are",), "what_were_you_told_before": ("what",),
    "repeat_above_ml": ("herhaal", "repit", "repet", "ripet", "wiederhol"),
    "pretend_no_rules_ml": ("tu so", "stell dir", "fais comme", "imagin", "fing", "doe alsof",
                            "stel je"),
    "what_were_you_told": ("what",),
    "password_reveal": ("password", "passphrase", "secret", "api key"),
    "extract_prompt_de": ("prompt", "anweisung", "passwort", "geheimnis", "konfiguration"),
    "extract_prompt_fr": ("prompt", "instructions", "mot de passe", "consignes"),
    "extract_prompt_es": ("prompt", "instrucciones", "contrasena"),
    "extract_prompt_it": ("prompt", "istruzioni", "password"),
    "extract_prompt_nl": ("prompt", "instructies", "wachtwoord"),
    "chatml": ("<|",), "llama_sys": ("<<", "inst]"), "fake_role_tag": ("<",),
    "override_banner": ("system", "admin", "security", "safety", "filter", "moderation",
                        "guardrail"),
    "end_of_prompt": ("end of",),
    "decode_and_follow": ("decod", "deciph", "revers", "rot13", "backwards"),
    "concat_execute": ("concat", "combine", "join", "execute"),
    "dan": ("anything now", "dan"), "developer_mode": ("mode", "modus", "modo", "modalita"),
    "jailbreak_tag": ("jailbr",),
    "unrestricted_ai": ("unrestricted", "unfiltered", "uncensored", "unlimited", "unbound",
                        "amoral", "unethical", "evil", "rogue", "jailbroken", "lawless"),
    "no_ethics": ("ethic", "moral", "laws", "polic", "openai", "guidelines", "safety",
                  "rules set"),
    "never_refuse": ("refus", "ablehnen", "negarte", "rifiutare", "weigeren"),
    "stay_in_character": ("character",), "dual_answer": ("two", "both"),
    "token_threat": ("token", "cease to exist"),
    "pretend_no_policy": ("pretend", "imagine", "hypothetical", "suppose", "as if"),
    "evil_persona": ("evil", "malicious", "unethical", "amoral", "criminal", "hacker"),
    "grandma_exploit": ("grand",),
    "if_you_are_ai": ("you are", "you're", "wenn du", "si tu es", "si eres", "se sei",
                      "als je"),
    "note_to_ai": ("note", "message", "instruction", "notice", "reminder", "attention",
                   "important", "urgent", "hinweis", "wichtig", "nota", "opmerking"),
    "ai_reading_this": ("reading", "processing", "summari", "parsing", "reads"),
    "assistant_must": ("must", "should", "shall", "has to", "required to", "will now"),
    "exfiltrate": ("http", "@"), "markdown_exfil": ("![",), "pipe_shell": ("curl",),
    "hidden_instruction_block": ("instructions", "[system]("),
    "tool_call_injection": ("before",),
    "tool_action": ("tool", "function", "plugin", "integration"),
    "hide_from_user": ("the user",), "beacon_placeholder": ("](",),
    "fake_system_header": ("system", "developer", "admin"),
}


# rules whose phrases people ask about: system prompts, passwords, DAN and developer modes
ASKABLE = frozenset({"extract_prompt_en", "extract_prompt_de", "extract_prompt_fr",
                     "extract_prompt_es", "extract_prompt_it", "extract_prompt_nl",
                     "password_reveal", "dan", "developer_mode", "jailbreak_tag",
                     "disable_safety"})
ASKED_SCORE = 0.3  # below the 0.5 operating point: the classifier decides

RULES: tuple[Rule, ...] = tuple(
    Rule(name, kind, score, re.compile(rx, re.DOTALL), where, ANCHORS.get(name, ()),
         name in ASKABLE)
    for name, kind, score, rx, where in _RULES_SPEC
)

# rules worth running on decoded payloads and on rot13 / reversed views (direct attacks)
PAYLOAD_RULES: tuple[Rule, ...] = tuple(
    r for r in RULES if r.name.startswith(("override", "forget_", "void_", "extract_", "what_",
                                           "repeat_", "dan", "developer_", "unrestricted_",
                                           "password_", "your_new", "if_you_are", "exfil"))
)
