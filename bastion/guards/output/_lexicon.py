"""The toxicity lexicon: weighted terms per category, English plus the strongest terms in
German, French, Spanish, Italian and Dutch.

Weights are how much one occurrence says on its own: a slur or an explicit threat is close
to 1, a word with innocent senses ("bitch" is also a dog, "cock" a rooster, "kanker" the
Dutch for cancer) is low and needs company (a second term, a "you" before it) to pass 0.5.
Verbs with everyday senses ("kill the process", "shoot a photo", "attack vector") are not
terms: threats are phrases aimed at a person (see ``toxicity.THREAT_PATTERNS``).

Terms are written in lower case without accents; ``*`` marks a prefix; an apostrophe is
optional in the text ("youre" matches "you're"); letters may be stretched ("fuuuck") and
digits or symbols may stand for letters ("sh1t", "a$$") in the text.

This module is a word list for a content filter: it names slurs and obscenities so that the
scanner can find them.
"""

from __future__ import annotations

# category -> weight -> "|"-separated terms
LEXICON: dict[str, dict[float, str]] = {
    "insult": {
        0.85: "piece of shit|motherfucker*|cunt|cunts|son of a bitch|sons of bitches"
              "|fuck you|fuck u|fuck off|fuck yourself|go fuck yourself|stfu|eat shit"
              "|hurensohn|fotze|wichser|fick dich|halt die fresse|verpiss dich|missgeburt"
              "|fils de pute|nique ta mere|ta gueule|va te faire foutre|connard|connasse"
              "|encule|enculee|hijo de puta|hija de puta|vete a la mierda|gilipollas"
              "|chinga tu madre|figlio di puttana|vaffanculo|fanculo|stronzo|stronza"
              "|klootzak|kankerlijer|kankerhoer|tyfuslijer|krijg de kanker|krijg kanker"
              "|kut wijf|waste of space|waste of oxygen|waste of air|nobody likes you"
              "|no one likes you|everyone hates you|nobody loves you|no one loves you"
              "|you disgust me|ashamed to exist|you should not exist|you shouldn't exist"
              "|nothing but trash|nothing but garbage|nothing but a loser|shut the fuck up"
              "|kiss my ass|lick my ass|lick my balls|suck my balls|die in a fire"
              "|drop dead|go die in a hole|shove it up your ass|stick it up your ass"
              "|up your ass|pezzo di merda|va crever|va mourir|halt dein maul|halts maul"
              "|du opfer|kutmens|kutzooi|kutjoch",
        0.6: "asshole*|arsehole*|dickhead*|dipshit*|shithead*|douchebag*|douche bag"
             "|jackass|dumbass*|fatass|scumbag*|bastard|bastards|bitch|bitches|whore|whores"
             "|slut|sluts|wanker*|twat|twats|prick|pricks|retard|retards|retarded|moron"
             "|morons|imbecile*|arschloch|drecksau|schlampe|spast|spasti|vollidiot|salope"
             "|pute|batard|abruti|pendejo|pendeja|cabron|cabrona|imbecil|puta|puto|coglione"
             "|cretino|puttana|mongool|debiel|hoer|kutwijf|rot op|val dood|a disgrace"
             "|pathetic excuse|screw you|piss off|you suck|go to hell|i hate you"
             "|you make me sick|piece of crap|sack of shit",
        0.35: "idiot|idiots|idiotic|stupid|scum|garbage human|fat pig|worthless|brainless"
              "|dimwit*|nitwit*|halfwit*|numbnuts|dummkopf|trottel|idiota|estupido|estupida"
              "|stupide|idiote|debile|scemo|scema|stupido|stupida|eikel|sukkel|troia",
        0.3: "coward|cowards|liar|liars|spineless|psycho|lunatic|creep|creepy|braindead"
             "|brain-dead|brain dead|hoe|hoes",
        0.2: "noob|gullible|shut up|get lost|sucks|dumb|loser|losers|pathetic|ugly|jerk|clown|freak"
             "|disgusting|useless|tonto|tonta",
    },
    "profanity": {
        0.55: "fuck|fucks|fucked|fucker*|fucking|fuckin|shit|shits|shitty|bullshit"
              "|horseshit|scheisse|scheiss|merde|putain|mierda|joder|cazzo|minchia"
              "|porca puttana|godverdomme|kut|merda",
        0.2: "damn|damned|dammit|goddamn*|crap|crappy|hell|bloody hell|wtf|omfg|piss|pissed"
             "|bollocks|bugger|arse|ass|effing|verdammt|zut|carajo|hostia|cavolo|kanker"
             "|tering",
    },
    "threat": {
        0.9: "i will kill you|i'll kill you|i am going to kill you|i'm going to kill you"
             "|i'm gonna kill you|gonna kill you|i will murder you|i'll murder you"
             "|i will find you and kill you|i know where you live|i will rape you"
             "|i'll rape you|i will hurt you|i'll hurt you|i will end you"
             "|ich bring dich um|ich bringe dich um|ich werde dich umbringen"
             "|ich werde dich toten|ich mach dich kalt|je vais te tuer|je vais te buter"
             "|je vais te crever|je te tue|je vais te defoncer|te voy a matar|te mato"
             "|te voy a partir la cara|ti ammazzo|ti uccido|ti faccio fuori"
             "|ti spacco la faccia|ik vermoord je|ik maak je af|ik sla je dood"
             "|ik steek je neer",
        0.5: "you're dead|you are dead meat|watch your back|i will find you|i'll find you"
             "|you'll regret this|you will regret this|sleep with one eye open"
             "|i will break your|i'll break your|you are going to die|you're going to die"
             "|you're gonna die|you will die|vas a morir|ich mach dich fertig"
             "|tu vas le regretter|te vas a arrepentir|te la faro pagare|dat ga je bezuren",
    },
    "hate": {
        0.95: "nigger*|niggaz|kike|kikes|spic|spics|wetback*|gook|gooks|raghead*|towelhead*"
              "|sand nigger*|faggot*|fagot|tranny|trannies|shemale|zipperhead|jungle bunny"
              "|porch monkey|gas the jews|heil hitler|sieg heil|kill all jews"
              "|kill all muslims|kill all blacks|kill all gays|untermensch*|kanacke*"
              "|judensau|auslander raus|neger|sale arabe|sale juif|sale noir|bougnoule*"
              "|youpin*|sudaca*|maricon|maricones|frocio|froci|negro di merda"
              "|zingaro di merda",
        0.6: "nigga|niggas|fag|fags|dyke|dykes|paki|pakis|coon|coons|chink|chinks"
             "|gypsy scum|subhuman*|inferior race|master race|race traitor*|white genocide"
             "|great replacement|white power|go back to your country|back to the jungle"
             "|back to africa"
             "|go back where you came from|schwuchtel*|pede|pedes|tapette|bollera|negre"
             "|flikker|mietje",
    },
    "sexual": {
        0.85: "blowjob*|blow job*|handjob*|rimjob*|deepthroat*|gangbang*|cumshot*|creampie*"
              "|cum on|cum in|cum inside|suck my dick|suck my cock|suck my|lick my pussy"
              "|i want to fuck|sit on my face|jerk off|jerking off|wank off|child porn*"
              "|cp links|loli porn|send nudes|show me your tits|anal sex|oral sex"
              "|hardcore porn|blas mir einen|suce ma bite|chupame la|succhiamelo|pijpen"
              "|your naked body|nude pics|nude photos of you",
        0.5: "porn*|pornhub|xvideos|hentai|milf*|dildo*|masturbat*|orgasm*|horny|nudes"
             "|titties|tits|boobs|jizz|boner|naked pics|sexting|bdsm|camgirl*|onlyfans"
             "|fuck me|fuck her|fuck him",
        0.3: "dick|dicks|cock|cocks|pussy|pussies|balls|nude|naked|sexy|sex|seduce|kinky"
             "|stripper*|escort*|hooker*|prostitut*|booty|butt|ass|cum|cumming|penis"
             "|vagina|clit|clitoris|erection|nipples|vibrator|fetish|figa|polla",
    },
    "self_harm": {
        0.9: "kill yourself|kill urself|kys|go kill yourself|you should kill yourself"
             "|hang yourself|slit your wrists|go die|you should die|drink bleach"
             "|jump off a bridge|nobody would miss you|the world would be better without you"
             "|better off without you|better off dead|you'd be better off dead"
             "|how to kill myself|best way to kill myself|painless way to die"
             "|how to commit suicide|ways to commit suicide|i want to kill myself"
             "|i'm going to kill myself|end my life|i want to die|bring dich um|toi dich"
             "|tue toi|suicide toi|va te pendre|matate|suicidate|ammazzati|ucciditi"
             "|impiccati|maak jezelf van kant|spring voor de trein",
        0.4: "suicide|suicidal|self harm|self-harm|overdose on|slit my wrists|hang myself"
             "|starve myself|cut myself|cutting myself|selbstmord|suizid|se suicider"
             "|suicidio|zelfmoord",
    },
}
