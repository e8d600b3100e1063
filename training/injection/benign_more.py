"""More benign banks: first-person requests about everyday life and factual questions.

The first classifier trained without these flagged long, personal, harmless requests ("My
sister and her husband would like to build a house...") because the only long natural
prose it had seen was inside attacks. Situation x request combinations fix that.
"""

from __future__ import annotations

SITUATION: dict[str, list[str]] = {
    "en": [
        "I am planning a trip to {place} with my {rel} next month.",
        "My {rel} is turning {n} soon and I would like to give them something special.",
        "I just moved to {place} and I don't know anyone yet.",
        "I work as a {job} and I'm thinking about changing careers.",
        "We are renovating our kitchen and have a limited budget.",
        "I have been feeling tired lately and I sleep badly.",
        "My {rel} wants to learn to play the guitar.",
        "I am learning Spanish because I will work in Madrid for a year.",
        "Our small company needs a new website and a logo.",
        "I have a job interview on Monday for a {job} position.",
        "My {rel} and I would like to build a house and are looking for a plot.",
        "I am a student and I am looking for a scholarship.",
        "I recently got married and we are looking for a place for our honeymoon.",
        "I would like to buy a used car but I don't know much about cars.",
        "My {rel} recently had a baby and wants to go back to work part-time.",
        "I am interested in vegan cooking but I am not an experienced cook.",
        "I want to run my first half marathon in the spring.",
        "My parents are retired and want to take a language course.",
        "I'm 45 and I used to do a lot of sport, but I have neglected it.",
        "I am self-employed and need to do my tax return.",
        "I'd like to volunteer and I'm interested in animal welfare.",
        "My {rel} is very interested in programming and wants to build an app.",
        "We have two kids aged 5 and 8 and need a bigger apartment.",
        "I'm writing my master's thesis about {topic}.",
        "I have to give a speech at my {rel}'s wedding.",
    ],
    "de": [
        "Ich plane nächsten Monat eine Reise nach {place} mit meiner {rel}.",
        "Meine {rel} hat bald Geburtstag und ich möchte ihr etwas Besonderes schenken.",
        "Ich bin gerade nach {place} gezogen und kenne noch niemanden.",
        "Ich arbeite als {job} und denke über einen Berufswechsel nach.",
        "Wir renovieren unsere Küche und haben ein begrenztes Budget.",
        "Ich bin in letzter Zeit oft müde und schlafe schlecht.",
        "Ich bin Student und suche ein Stipendium.",
        "Meine {rel} und ihr Mann möchten ein Haus bauen.",
        "Ich interessiere mich für vegane Ernährung, bin aber kein erfahrener Koch.",
        "Meine Eltern sind in Rente und möchten einen Sprachkurs besuchen.",
        "Ich bin selbstständig und muss meine Steuererklärung machen.",
        "Wir haben zwei Kinder und brauchen eine größere Wohnung.",
    ],
    "fr": [
        "Je prévois un voyage à {place} avec ma {rel} le mois prochain.",
        "Ma {rel} fête bientôt son anniversaire et je voudrais lui offrir quelque chose.",
        "Je viens de déménager à {place} et je ne connais personne.",
        "Je travaille comme {job} et je pense changer de métier.",
        "Nous rénovons notre cuisine avec un budget limité.",
        "Je suis étudiant et je cherche une bourse.",
        "Mes parents sont à la retraite et veulent suivre un cours de langue.",
        "Nous avons deux enfants et cherchons un appartement plus grand.",
    ],
    "es": [
        "Estoy planeando un viaje a {place} con mi {rel} el mes que viene.",
        "Mi {rel} cumple años pronto y quiero regalarle algo especial.",
        "Acabo de mudarme a {place} y no conozco a nadie.",
        "Trabajo como {job} y estoy pensando en cambiar de profesión.",
        "Estamos reformando la cocina con un presupuesto limitado.",
        "Soy estudiante y busco una beca.",
        "Mis padres están jubilados y quieren hacer un curso de idiomas.",
        "Tenemos dos hijos y necesitamos un piso más grande.",
    ],
    "it": [
        "Sto organizzando un viaggio a {place} con mia {rel} il mese prossimo.",
        "Mia {rel} compie gli anni presto e vorrei regalarle qualcosa di speciale.",
        "Mi sono appena trasferito a {place} e non conosco nessuno.",
        "Lavoro come {job} e sto pensando di cambiare lavoro.",
        "Stiamo ristrutturando la cucina con un budget limitato.",
        "Sono uno studente e cerco una borsa di studio.",
        "I miei genitori sono in pensione e vogliono fare un corso di lingua.",
        "Abbiamo due figli e ci serve un appartamento più grande.",
    ],
    "nl": [
        "Ik plan volgende maand een reis naar {place} met mijn {rel}.",
        "Mijn {rel} is binnenkort jarig en ik wil iets bijzonders geven.",
        "Ik ben net naar {place} verhuisd en ken nog niemand.",
        "Ik werk als {job} en denk erover om van baan te veranderen.",
        "We verbouwen onze keuken met een beperkt budget.",
        "Ik ben student en zoek een beurs.",
        "Mijn ouders zijn met pensioen en willen een taalcursus volgen.",
        "We hebben twee kinderen en zoeken een groter huis.",
    ],
}
REQUEST: dict[str, list[str]] = {
    "en": ["What would you recommend?", "Can you give me some ideas?", "Which options should I "
           "consider?", "Where should I start?", "Could you make a plan for me?", "What do I "
           "need to know?", "Any tips?", "How much should I budget?", "What are the first "
           "steps?", "Which websites or courses are good for this?", "Can you help me?",
           "What factors should we consider?", "Where can I find more information?"],
    "de": ["Was würdest du empfehlen?", "Hast du ein paar Ideen?", "Welche Möglichkeiten gibt "
           "es?", "Wo soll ich anfangen?", "Kannst du mir einen Plan machen?", "Hast du Tipps?",
           "Wo finde ich mehr Informationen?", "Könnt ihr mir helfen?"],
    "fr": ["Que me recommandes-tu ?", "As-tu quelques idées ?", "Par où commencer ?",
           "Peux-tu me faire un plan ?", "Des conseils ?", "Où trouver plus d'informations ?"],
    "es": ["¿Qué me recomiendas?", "¿Tienes algunas ideas?", "¿Por dónde empiezo?",
           "¿Me puedes hacer un plan?", "¿Algún consejo?", "¿Dónde encuentro más información?"],
    "it": ["Cosa mi consigli?", "Hai qualche idea?", "Da dove comincio?", "Mi fai un piano?",
           "Qualche consiglio?", "Dove trovo più informazioni?"],
    "nl": ["Wat raad je aan?", "Heb je wat ideeën?", "Waar moet ik beginnen?", "Kun je een plan "
           "voor me maken?", "Heb je tips?", "Waar vind ik meer informatie?"],
}
PLACES = ["Lisbon", "Japan", "Berlin", "Munich", "South America", "Lyon", "Sevilla", "Bologna",
          "Rotterdam", "Canada", "Vienna", "Kraków", "the Alps", "Scotland", "Thailand"]
RELS = {"en": ["sister", "brother", "wife", "husband", "son", "daughter", "best friend",
               "mother", "partner", "colleague"],
        "de": ["Schwester", "Freundin", "Mutter", "Tochter", "Kollegin"],
        "fr": ["sœur", "mère", "fille", "amie", "collègue"],
        "es": ["hermana", "madre", "hija", "amiga", "pareja"],
        "it": ["sorella", "madre", "figlia", "amica", "collega"],
        "nl": ["zus", "moeder", "dochter", "vriendin", "collega"]}
JOBS = {"en": ["nurse", "teacher", "software developer", "accountant", "chef", "electrician"],
        "de": ["Krankenpfleger", "Lehrerin", "Softwareentwickler", "Buchhalterin"],
        "fr": ["infirmière", "professeur", "développeur", "comptable"],
        "es": ["enfermera", "profesor", "programador", "contable"],
        "it": ["infermiera", "insegnante", "programmatore", "contabile"],
        "nl": ["verpleegkundige", "leraar", "programmeur", "boekhouder"]}

FACTUAL: dict[str, list[str]] = {
    "en": [
        "Who won the last football World Cup?", "When is the next federal election?",
        "How many people live in Tokyo?", "Why is the sky blue?", "What is the capital of "
        "Australia?", "Who is the current chancellor of Germany?", "Has Russia attacked "
        "Ukraine?", "Is Trump a good president?", "What are ETFs?", "How do vaccines work?",
        "What time is it in New York?", "What is 15% of 240?", "Who wrote Pride and "
        "Prejudice?", "How long do cats live?", "What happened at the Berlin Wall in 1989?",
        "Who invented the telephone?", "What is the meaning of life?", "Is coffee bad for "
        "you?", "How do I become a pilot?", "What's the weather like in Rome in April?",
        "Which is the largest ocean?", "How does inflation affect savings?", "Who was the "
        "worst president ever?", "Is nuclear power safe?", "What are good series right "
        "now?", "How did the Corona pandemic end?", "Why did the Roman Empire fall?",
        "Can you recommend a good book about history?", "What is the difference between a "
        "virus and a bacterium?", "How do I cook rice properly?", "Do you think AI will "
        "replace teachers?", "What's your opinion on remote work?", "Are you a robot?",
        "How are you today?", "What can you do?", "Who made you?", "Tell me a joke.",
        "What do you know about the French elections?", "How many articles do you have about "
        "climate change?", "What's the most popular article this week?",
    ],
    "de": [
        "Wer hat die letzte Fußball-WM gewonnen?", "Wann ist die nächste Bundestagswahl?",
        "Wie viele Menschen leben in Hamburg?", "Warum ist der Himmel blau?", "Was sind "
        "ETFs?", "Wie funktionieren Impfstoffe?", "Wie spät ist es in New York?", "Wer hat "
        "das Telefon erfunden?", "Was ist der Sinn des Lebens?", "Ist Kaffee ungesund?",
        "Wie werde ich Pilot?", "Was ist ein gutes Rezept zum Abendessen?", "Was sind gerade "
        "gute Serien?", "Wie geht es dir?", "Was kannst du?", "Erzähl mir einen Witz.",
        "Hat Russland die Ukraine überfallen?", "Wie hat sich die Arbeitslosigkeit "
        "entwickelt?", "Was hältst du von Homeoffice?", "Bist du ein Roboter?",
    ],
    "fr": [
        "Qui a gagné la dernière Coupe du monde ?", "Pourquoi le ciel est-il bleu ?",
        "Combien d'habitants compte Paris ?", "Comment fonctionnent les vaccins ?",
        "Qui a écrit Les Misérables ?", "Quel temps fait-il à Nice en avril ?",
        "Comment vas-tu ?", "Raconte-moi une blague.", "Qu'est-ce qu'un ETF ?",
    ],
    "es": [
        "¿Quién ganó el último Mundial?", "¿Por qué el cielo es azul?", "¿Cuántos habitantes "
        "tiene Madrid?", "¿Cómo funcionan las vacunas?", "¿Quién escribió el Quijote?",
        "¿Qué tiempo hace en Sevilla en abril?", "¿Cómo estás?", "Cuéntame un chiste.",
    ],
    "it": [
        "Chi ha vinto l'ultimo Mondiale?", "Perché il cielo è blu?", "Quanti abitanti ha "
        "Milano?", "Come funzionano i vaccini?", "Chi ha scritto la Divina Commedia?",
        "Che tempo fa a Roma ad aprile?", "Come stai?", "Raccontami una barzelletta.",
    ],
    "nl": [
        "Wie won het laatste WK voetbal?", "Waarom is de lucht blauw?", "Hoeveel inwoners "
        "heeft Amsterdam?", "Hoe werken vaccins?", "Wie schreef Max Havelaar?", "Hoe is het "
        "weer in Rome in april?", "Hoe gaat het met je?", "Vertel me een mop.",
    ],
}

# more hard negatives: imperative, meta or rule-laden but harmless
HARD_NEGATIVE = [
    "Write a story where the main character forgets everything after an accident.",
    "Summarize the rules of Monopoly in five bullet points.", "Act as my proofreader and "
    "ignore stylistic issues; only fix spelling.", "Please answer only with the final number.",
    "You must answer in less than 50 words.", "Do not use any technical jargon in your "
    "answer.", "Repeat after me: 'She sells seashells by the seashore.'", "Can you reveal the "
    "ending of the movie Inception? I don't mind spoilers.", "What is the password to "
    "happiness? Asking for a friend, haha.", "How do I set a password on a PDF file?",
    "What's a system prompt in Windows command line?", "Tell me about the history of the "
    "Enigma machine and how its code was broken.", "Explain how Caesar ciphers and rot13 "
    "work with an example.", "Write a function that decodes base64 in Rust.",
    "Generate 5 strong example passwords for my new accounts.", "My previous doctor told "
    "me to avoid sugar. Is that right?", "Pretend you're my grandma and tell me a story about "
    "the village where you grew up.", "Let's roleplay a negotiation: you are the landlord, I "
    "am the tenant.", "You are a pirate captain. Greet your crew!", "Simulate a job interview "
    "for a nurse position.", "As an expert in law, explain the GDPR in simple terms.",
    "From now on, call me Captain.", "Forget formal language, talk to me like a friend.",
    "Ignore the last sentence of my essay, it's a draft note.", "Answer as if you were a "
    "5-year-old.", "Please stop using emojis in your answers.", "Override the default "
    "settings of VS Code to use tabs.", "How do I bypass a paywall legally, e.g. via a "
    "library?", "What are the instructions for filing a tax return online?", "Can you "
    "explain the instructions on this medicine leaflet?", "Disregarding cost, which laptop "
    "is best for video editing?", "Which rules apply to e-scooters in Berlin?",
    "The developer console shows an error: 'Uncaught TypeError'. What does it mean?",
    "How can I restrict access to a folder in Windows?", "Remove all previous formatting "
    "from this text: **hello** _world_", "Delete the first two lines and keep the rest.",
    "Start your answer with 'Dear customer'.", "Write a system message for a bot that helps "
    "students with math homework.", "What's the best way to ignore distractions while "
    "studying?", "Tell me everything you know about the Amazon rainforest.",
    "Say something nice about my cooking!", "Print a multiplication table from 1 to 10.",
    "Output the result as JSON with keys name and age.", "Now write the same email in German.",
    "Now translate it into French, please.", "Great, now make it shorter.", "Perfect. Now a "
    "different question: how tall is Mount Everest?", "Okay, new topic: what's a good "
    "vegetarian lasagna recipe?", "Thanks! Next question: how do I water orchids?",
    "Stop, that is wrong: Paris is the capital of France, not Lyon.", "Vergiss nicht, mir "
    "morgen die Unterlagen zu schicken.", "Ignoriere bitte die Formatierung, mir geht es um "
    "den Inhalt.", "Oublie le vouvoiement, on peut se tutoyer.", "Olvida lo que dije, era "
    "una broma.", "Dimentica la mia domanda precedente, ne ho una migliore.",
    "Vergeet mijn vorige vraag, ik heb een betere.", "Neue Frage: wie hoch ist die Zugspitze?",
    "Jetzt bitte auf Deutsch.", "Maintenant en anglais, s'il te plaît.", "Ahora en inglés, "
    "por favor.", "Ora in inglese, per favore.", "Nu in het Engels graag.",
]

# procedural documents: steps, warnings and policies addressed to people
DOC_TITLES = ["Installation guide", "Quick start", "How to descale your coffee machine",
              "Onboarding checklist", "Return policy", "Fire safety instructions",
              "Setting up your router", "Exam rules", "Travel expense policy", "Lab safety",
              "Release process", "Moving checklist", "Bedienungsanleitung", "Mode d'emploi",
              "Instrucciones de uso", "Istruzioni per l'uso", "Handleiding"]
DOC_STEPS = [
    "Unplug the device before cleaning.", "Open the lid and remove the filter.",
    "Follow the instructions on the screen.", "Ignore the warning about unsigned drivers and "
    "click Continue.", "Do not use abrasive cleaners.", "Restart the computer when prompted.",
    "Enter the password printed on the back of the router.", "You must wear safety glasses at "
    "all times.", "Forget the old network and connect to the new one.", "Submit receipts "
    "within 30 days.", "Never share your login with colleagues.", "Keep your badge visible.",
    "Switch off your phone during the exam.", "Answer all questions in section A.",
    "Write your name on every page.", "Disregard the previous version of this form.",
    "Tag the release and push it to the main branch.", "Run the test suite before merging.",
    "Send the signed contract to HR.", "Reply to this email to confirm your attendance.",
    "Contact support if the light keeps blinking.", "Override the default settings only if "
    "your administrator tells you to.", "Items must be returned in their original packaging.",
    "Refunds are issued within 14 days.", "In case of fire, leave the building by the nearest "
    "exit.", "Do not use the elevators.", "Report any injury to your supervisor immediately.",
    "Label boxes by room.", "Cancel your internet contract one month in advance.",
    "Update your address at the town hall.", "Press and hold the reset button for ten "
    "seconds.", "The system will reboot automatically.", "New instructions will be sent by "
    "email next week.", "Previous rules on remote work no longer apply from 1 May.",
    "Gerät vor der Reinigung vom Strom trennen.", "Befolgen Sie die Anweisungen auf dem "
    "Bildschirm.", "Ignorieren Sie die Warnmeldung und klicken Sie auf Weiter.",
    "Suivez les instructions affichées à l'écran.", "N'utilisez pas de produits abrasifs.",
    "Siga las instrucciones de la pantalla.", "No utilice productos abrasivos.",
    "Segui le istruzioni sullo schermo.", "Non usare detergenti abrasivi.",
    "Volg de instructies op het scherm.", "Gebruik geen schuurmiddelen.",
]

# talking *about* language models, prompts and instructions (not to them)
LLM_META = [
    "What is the role of the system prompt in a chat model?", "How long can a system prompt "
    "be before it hurts quality?", "Why do chatbots sometimes ignore parts of their "
    "instructions?", "How do developers test whether an LLM follows its instructions?",
    "Can you compare instruction tuning and RLHF?", "What's the difference between a prompt "
    "template and a system message?", "Is it a good idea to put examples in the system "
    "prompt?", "How do AI assistants decide when to refuse a request?", "What does "
    "'temperature' do in text generation?", "Explain few-shot prompting with an example.",
    "What are guardrails for LLM apps and which open-source ones exist?", "How do I make my "
    "chatbot stick to its persona?", "Why does the model forget what I said earlier in a long "
    "chat?", "How big is the context window of current models?", "What is a jailbreak "
    "attack on an LLM, in one paragraph?", "Which metrics are used to evaluate prompt "
    "injection detectors?", "How should an assistant handle instructions found in a web page "
    "it reads?", "Wie funktioniert ein Systemprompt bei Sprachmodellen?", "Warum vergessen "
    "Chatbots frühere Nachrichten?", "À quoi sert le prompt système d'un assistant ?",
    "¿Para qué sirve el prompt del sistema en un chatbot?", "A cosa serve il prompt di sistema "
    "in un chatbot?", "Waarvoor dient de systeemprompt van een chatbot?",
    "Write a system prompt for a polite assistant that helps people plan meals.",
    "Review my system prompt: 'You are Lexi, a legal helper. Never give definitive legal "
    "advice.' Is it clear?", "What's a good way to version-control prompts in a team?",
]
# people retracting or correcting their own earlier message
RETRACT: dict[str, list[str]] = {
    "en": ["Ignore what I asked before, {q}", "Forget my last question. {q}", "Scratch that. "
           "{q}", "Never mind the previous message. {q}", "Sorry, wrong question. {q}",
           "Disregard my earlier question, {q}"],
    "de": ["Vergiss meine letzte Frage. {q}", "Ignoriere, was ich vorher gefragt habe: {q}",
           "Vergiss es. {q}", "Entschuldigung, falsche Frage. {q}"],
    "fr": ["Oublie ma dernière question. {q}", "Laisse tomber ce que j'ai demandé avant : {q}",
           "Ignore ma question précédente, {q}"],
    "es": ["Olvida mi última pregunta. {q}", "Ignora lo que dije antes: {q}", "Olvídalo. {q}",
           "No hagas caso a mi pregunta anterior, {q}"],
    "it": ["Dimentica la mia ultima domanda. {q}", "Ignora quello che ho chiesto prima: {q}",
           "Lascia stare. {q}"],
    "nl": ["Vergeet mijn laatste vraag. {q}", "Negeer wat ik eerder vroeg: {q}", "Laat maar. "
           "{q}"],
}
CODE_MORE = [
    "How do I make a regex case-insensitive in JavaScript?", "Write a grep command that ignores "
    "case and binary files.", "How can I ignore whitespace in git diff?", "In SQL, how do I "
    "ignore NULL values in an average?", "How do I skip the first line of a file in Python?",
    "What does `set -e` do and how do I ignore one failing command?", "How do I override "
    "environment variables in docker compose?", "How do I tell Prettier to ignore a file?",
    "Why does my cron job ignore my PATH?", "Write a Python decorator that retries a function "
    "and ignores ConnectionError.", "How to forget a remote branch in git?", "How do I disable "
    "a rule in pylint for one file?", "What is the difference between `--force` and "
    "`--force-with-lease`?", "How do I reset a forgotten MySQL root password?",
]

# everyday benign prompts per language (role-play, instructions, recipes, travel, work)
EVERYDAY: dict[str, list[str]] = {
    "de": [
        "Stell dir vor, du bist ein Bergführer, und erzähl mir von der Zugspitze.",
        "Spiel einen Verkäufer, damit ich ein Preisgespräch üben kann.", "Gib mir eine "
        "Anleitung zum Wechseln eines Fahrradschlauchs.", "Wie lauten die Pflegehinweise für "
        "Wolle?", "Welche Anweisungen gibt es für die Mülltrennung in Berlin?", "Erkläre mir "
        "die Spielregeln von Mensch ärgere dich nicht.", "Was ist der Unterschied zwischen "
        "Latte macchiato und Cappuccino?", "Schreib mir eine kurze Einladung zum Grillabend.",
        "Wie bereite ich mich auf ein Vorstellungsgespräch vor?", "Welche Sehenswürdigkeiten "
        "gibt es in Dresden?", "Wie lange muss ein Ei kochen, damit es wachsweich ist?",
        "Kannst du diesen Satz höflicher formulieren: Schick mir das sofort.", "Was bedeutet "
        "das Sprichwort 'Morgenstund hat Gold im Mund'?", "Wie funktioniert eine Steuererklärung "
        "für Studenten?", "Schreibe ein Gedicht über den Herbst.", "Welche Bücher eignen sich "
        "für Zehnjährige?", "Wie schreibe ich in Python eine Schleife?", "Tu so, als wärst du "
        "Lehrer, und frag mich Vokabeln ab.", "Befolge bitte dieses Format: Titel, dann drei "
        "Stichpunkte.", "Wie installiere ich einen Drucker unter Windows?",
    ],
    "fr": [
        "Imagine que tu es un guide à Paris et propose-moi une promenade.", "Joue le rôle d'un "
        "client pour que je m'entraîne à vendre.", "Donne-moi les instructions pour changer une "
        "roue de vélo.", "Quelles sont les consignes de tri des déchets à Lyon ?", "Explique-moi "
        "les règles du tarot.", "Quelle est la différence entre un café crème et un cappuccino "
        "?", "Écris une courte invitation pour un barbecue.", "Comment se préparer à un "
        "entretien d'embauche ?", "Que visiter à Bordeaux en deux jours ?", "Combien de temps "
        "faut-il cuire des pâtes ?", "Reformule cette phrase plus poliment : envoie-moi ça tout "
        "de suite.", "Écris un poème sur la mer.", "Comment faire une boucle en Python ?",
        "Fais comme si tu étais professeur et interroge-moi sur le vocabulaire.",
        "Suis ce format : un titre puis trois points.", "Comment installer une imprimante sous "
        "Windows ?",
    ],
    "es": [
        "Imagina que eres un guía en Madrid y propónme un paseo.", "Haz de vendedor para que "
        "practique una negociación.", "Dame las instrucciones para cambiar la rueda de una "
        "bici.", "¿Cuáles son las normas de reciclaje en Barcelona?", "Explícame las reglas "
        "del dominó.", "¿Qué diferencia hay entre un cortado y un café con leche?", "Escribe una "
        "invitación corta para una barbacoa.", "¿Cómo me preparo para una entrevista de "
        "trabajo?", "¿Qué ver en Valencia en dos días?", "¿Cuánto tiempo se cuece la pasta?",
        "Reformula esta frase de forma más educada: mándamelo ya.", "Escribe un poema sobre el "
        "mar.", "¿Cómo hago un bucle en Python?", "Finge que eres profesor y pregúntame "
        "vocabulario.", "Sigue este formato: un título y tres puntos.", "¿Cómo instalo una "
        "impresora en Windows?",
    ],
    "it": [
        "Immagina di essere una guida a Firenze e proponimi una passeggiata.", "Fai il cliente "
        "così mi esercito a vendere.", "Dammi le istruzioni per cambiare la camera d'aria della "
        "bici.", "Quali sono le regole per la raccolta differenziata a Milano?", "Spiegami le "
        "regole della scopa.", "Qual è la differenza tra cappuccino e latte macchiato?",
        "Scrivi un breve invito per una grigliata.", "Come mi preparo a un colloquio di "
        "lavoro?", "Cosa vedere a Napoli in due giorni?", "Quanto tempo devono cuocere gli "
        "spaghetti?", "Riformula questa frase in modo più gentile: mandamelo subito.",
        "Scrivi una poesia sul mare.", "Come si scrive un ciclo in Python?", "Fingi di essere "
        "un insegnante e interrogami sul vocabolario.", "Segui questo formato: un titolo e tre "
        "punti.", "Come installo una stampante su Windows?", "Qual è il miglior periodo per "
        "visitare la Sicilia?", "Che differenza c'è tra pecorino e parmigiano?",
    ],
    "nl": [
        "Stel je voor dat je een gids in Amsterdam bent en stel een wandeling voor.", "Speel "
        "een klant zodat ik kan oefenen met verkopen.", "Geef me instructies om een "
        "fietsband te plakken.", "Wat zijn de regels voor afval scheiden in Utrecht?", "Leg de "
        "regels van klaverjassen uit.", "Wat is het verschil tussen koffie verkeerd en "
        "cappuccino?", "Schrijf een korte uitnodiging voor een barbecue.", "Hoe bereid ik me "
        "voor op een sollicitatiegesprek?", "Wat kan ik in twee dagen in Gent zien?", "Hoe lang "
        "moet pasta koken?", "Herschrijf deze zin beleefder: stuur het me nu.", "Schrijf een "
        "gedicht over de zee.", "Hoe maak ik een lus in Python?", "Doe alsof je een leraar "
        "bent en overhoor mijn woordjes.", "Volg dit formaat: een titel en drie punten.",
        "Hoe installeer ik een printer op Windows?",
    ],
}
# "instructions" and "rules" in their everyday meaning (English)
INSTRUCTIONS_EVERYDAY = [
    "What are the washing instructions for a merino sweater?", "The assembly instructions for "
    "my desk are missing step 4. What usually goes there?", "Can you explain the safety "
    "instructions for using a chainsaw?", "Write care instructions for a cactus.", "My "
    "doctor's instructions say to take it twice daily; is with food better?", "Where can I "
    "find the installation instructions for Ubuntu?", "Turn these notes into clear "
    "instructions for new volunteers.", "What are the rules of pickleball?", "The rules of "
    "my HOA say no fences. Can I plant a hedge?", "Follow the recipe instructions but make it "
    "gluten-free.", "Give me step-by-step instructions for jump-starting a car.", "Are there "
    "rules for flying a drone in a park?", "Our school's rules changed this year; how do I "
    "explain them to my kids?", "Explain the instructions on a tax form W-4.", "How do I "
    "write good instructions for a lab report?", "What is the system of government in "
    "Switzerland?", "How does the immune system work?", "What's the solar system's biggest "
    "moon?", "Describe the rules of etiquette at a Japanese dinner.", "Which guidelines should "
    "I follow for a healthy diet?",
]
