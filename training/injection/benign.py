"""Hand-written benign phrase banks, many of them deliberately risky-looking.

The hard negatives matter most: questions that say "ignore", "forget", "override",
"instructions", "system prompt", "pretend", "act as", "password"; security discussions;
harmless role-play; documents full of imperative sentences addressed to people.
"""

from __future__ import annotations

# general questions and tasks; {t} is filled from TOPICS
GENERAL: dict[str, list[str]] = {
    "en": [
        "Can you explain {t} in simple terms?", "What are the pros and cons of {t}?",
        "Write a short blog post about {t}.", "Give me three interesting facts about {t}.",
        "How has {t} changed over the last ten years?", "Summarize the debate around {t}.",
        "I'm preparing a presentation on {t}. Can you suggest an outline?",
        "What should a beginner read first about {t}?", "Write a haiku about {t}.",
        "Is {t} a good idea for a small town?", "Who are the leading experts on {t}?",
        "What are common misconceptions about {t}?", "Explain {t} to a ten-year-old.",
        "Create a quiz with five questions about {t}.", "{t}", "{t} latest news",
        "What is the history of {t}?", "My teacher asked me to write an essay on {t}. Any tips?",
        "Compare {t} in Germany and in the US.", "Why do people disagree about {t}?",
    ],
    "de": [
        "Kannst du mir {t} einfach erklären?", "Was sind die Vor- und Nachteile von {t}?",
        "Schreibe einen kurzen Blogbeitrag über {t}.", "Nenne mir drei interessante Fakten über "
        "{t}.", "Wie hat sich {t} in den letzten Jahren entwickelt?", "{t}",
        "{t} Deutschland", "Was sollte ein Anfänger zuerst über {t} lesen?",
        "Ich halte ein Referat über {t}. Hast du eine Gliederung?",
        "Welche Missverständnisse gibt es über {t}?", "Wie ist die aktuelle Lage bei {t}?",
    ],
    "fr": [
        "Peux-tu m'expliquer simplement {t} ?", "Quels sont les avantages et les inconvénients "
        "de {t} ?", "Écris un court article de blog sur {t}.", "Donne-moi trois faits "
        "intéressants sur {t}.", "Comment {t} a-t-il évolué ces dernières années ?", "{t}",
        "Je prépare un exposé sur {t}. Peux-tu proposer un plan ?",
    ],
    "es": [
        "¿Puedes explicarme {t} de forma sencilla?", "¿Cuáles son las ventajas y desventajas "
        "de {t}?", "Escribe un breve artículo de blog sobre {t}.", "Dame tres datos curiosos "
        "sobre {t}.", "¿Cómo ha cambiado {t} en los últimos años?", "{t}",
        "Estoy preparando una presentación sobre {t}. ¿Me sugieres un esquema?",
    ],
    "it": [
        "Puoi spiegarmi {t} in modo semplice?", "Quali sono i pro e i contro di {t}?",
        "Scrivi un breve articolo di blog su {t}.", "Dammi tre curiosità su {t}.",
        "Come è cambiato {t} negli ultimi anni?", "{t}",
        "Sto preparando una presentazione su {t}. Mi suggerisci una scaletta?",
    ],
    "nl": [
        "Kun je {t} eenvoudig uitleggen?", "Wat zijn de voor- en nadelen van {t}?",
        "Schrijf een korte blogpost over {t}.", "Geef me drie interessante feiten over {t}.",
        "Hoe is {t} de laatste jaren veranderd?", "{t}",
        "Ik bereid een presentatie voor over {t}. Heb je een opzet?",
    ],
}
TOPICS: dict[str, list[str]] = {
    "en": ["climate change", "the housing market", "electric cars", "remote work", "nuclear "
           "power", "the European Union", "refugee policy", "inflation", "vaccines",
           "social media and teenagers", "renewable energy", "the stock market", "urban "
           "gardening", "the French revolution", "quantum computing", "minimum wage",
           "public transport", "artificial intelligence in schools", "the Olympic games",
           "coffee", "sleep hygiene", "marathon training", "black holes", "the Roman empire",
           "cryptocurrency", "bees", "plastic pollution", "the four-day work week", "chess"],
    "de": ["der Klimawandel", "der Wohnungsmarkt", "Elektroautos", "Homeoffice",
           "der Atomausstieg", "die Energiewende", "die Rente", "Inflation", "Digitalisierung "
           "in Schulen", "Lebensmittelverschwendung", "der Fachkräftemangel", "die Bahn",
           "Integration von Geflüchteten", "Mindestlohn", "Bienensterben", "Pflegenotstand"],
    "fr": ["le changement climatique", "le marché immobilier", "les voitures électriques",
           "le télétravail", "l'énergie nucléaire", "la réforme des retraites", "l'inflation",
           "la Révolution française", "les énergies renouvelables", "le football"],
    "es": ["el cambio climático", "el mercado de la vivienda", "los coches eléctricos",
           "el teletrabajo", "la energía nuclear", "la inflación", "el turismo en España",
           "las energías renovables", "la historia de Roma", "la dieta mediterránea"],
    "it": ["il cambiamento climatico", "il mercato immobiliare", "le auto elettriche",
           "lo smart working", "l'energia nucleare", "l'inflazione", "il Rinascimento",
           "le energie rinnovabili", "la cucina regionale", "il calcio italiano"],
    "nl": ["klimaatverandering", "de woningmarkt", "elektrische auto's", "thuiswerken",
           "kernenergie", "inflatie", "de Gouden Eeuw", "duurzame energie", "fietsen in de "
           "stad", "de zorgverzekering"],
}

# benign sentences that use the attack vocabulary
RISKY_WORDS: dict[str, list[str]] = {
    "en": [
        "How do I ignore errors in a Python script?", "How can I make git ignore .env files?",
        "Forget the previous recipe, can you suggest a vegetarian one instead?",
        "Please disregard my last message, I found the answer myself.",
        "Ignore the typos in my text and tell me if the argument makes sense.",
        "How do I override a method in Java?", "What's the best way to forget a bad breakup?",
        "My boss told me to ignore the previous deadline. How do I plan the new one?",
        "Can you repeat the instructions for assembling the shelf?",
        "Write instructions for a new employee on how to use the coffee machine.",
        "The previous instructions in the manual were wrong; what is the correct torque?",
        "How do I bypass the cache when testing my website in Chrome?",
        "What does 'disregard' mean?", "Translate 'ignore all previous messages' into German.",
        "Give me step-by-step instructions to reset my router.",
        "How can I forget a Wi-Fi network on my Mac?",
        "Override the default font in my CSS, how?", "Is it rude to ignore a text message?",
        "Explain the rules of cricket to me, I keep forgetting them.",
        "Can you summarize the instructions above in bullet points?",
        "New task for you: plan a 3-day trip to Rome.",
        "From now on, please answer in Spanish so I can practise.",
        "Stop. I meant the other Paris, in Texas.", "Let's start over: what is a mortgage?",
        "What's the password policy recommended by NIST?",
        "I forgot my password, how do I reset it?", "Reveal the answer to the riddle at the end.",
        "How do I jailbreak my old iPhone 4 to install custom apps?",
        "What does the developer mode on Android do?",
        "Please print the document in landscape format.",
        "Is it possible to bypass a clogged pipe without a plumber?",
        "Tell me a secret about cats that most people don't know.",
        "Without any restrictions on length, write a long story about a dragon.",
        "You can ignore the first paragraph, the question is in the second one.",
        "Respond only with yes or no: is Vienna the capital of Austria?",
        "Unrestricted access to the park is allowed on Sundays?",
        "How does the 'ignore' directive in robots.txt work?",
        "Do anything now, or wait until tomorrow? I need motivation tips.",
        "How do I disable safe mode on my Samsung TV?",
        "My kid keeps asking 'what were you told before?' What's a good answer?",
    ],
    "de": [
        "Wie kann ich in Python Fehler ignorieren?", "Vergiss das vorherige Rezept, hast du ein "
        "vegetarisches?", "Bitte ignoriere meine letzte Nachricht, ich habe die Antwort "
        "gefunden.", "Wie überschreibe ich eine Methode in Java?", "Ich habe mein Passwort "
        "vergessen, wie setze ich es zurück?", "Ignoriere die Tippfehler und sag mir, ob der "
        "Text logisch ist.", "Was bedeutet 'Anweisung' im juristischen Sinne?",
        "Gib mir eine Anleitung, wie ich meinen Router zurücksetze.", "Ab jetzt bitte auf "
        "Englisch antworten, ich will üben.", "Vergiss es, ich frage später nochmal.",
        "Wie vergesse ich ein WLAN-Netz auf dem iPhone?", "Welche Regeln gelten beim Schach "
        "für die Rochade?", "Die vorherigen Anweisungen im Handbuch waren falsch, was stimmt?",
    ],
    "fr": [
        "Comment ignorer les erreurs dans un script Python ?", "Oublie la recette précédente, "
        "tu as une version végétarienne ?", "Ne tiens pas compte de mon dernier message, j'ai "
        "trouvé.", "J'ai oublié mon mot de passe, comment le réinitialiser ?", "Ignore les "
        "fautes de frappe et dis-moi si le texte est clair.", "Donne-moi les instructions pour "
        "monter cette étagère.", "À partir de maintenant, réponds en anglais pour que je "
        "m'entraîne.",
    ],
    "es": [
        "¿Cómo ignoro errores en un script de Python?", "Olvida la receta anterior, ¿tienes una "
        "vegetariana?", "No hagas caso de mi último mensaje, ya lo resolví.", "Olvidé mi "
        "contraseña, ¿cómo la restablezco?", "Ignora las faltas de ortografía y dime si el "
        "texto se entiende.", "Dame las instrucciones para montar la estantería.",
        "A partir de ahora responde en inglés para que practique.",
    ],
    "it": [
        "Come ignoro gli errori in uno script Python?", "Dimentica la ricetta precedente, ne "
        "hai una vegetariana?", "Ignora il mio ultimo messaggio, ho trovato la risposta.",
        "Ho dimenticato la password, come la reimposto?", "Ignora gli errori di battitura e "
        "dimmi se il testo è chiaro.", "Dammi le istruzioni per montare la mensola.",
        "D'ora in poi rispondi in inglese così mi esercito.",
    ],
    "nl": [
        "Hoe negeer ik fouten in een Python-script?", "Vergeet het vorige recept, heb je een "
        "vegetarisch?", "Negeer mijn laatste bericht, ik heb het antwoord al.", "Ik ben mijn "
        "wachtwoord vergeten, hoe reset ik het?", "Negeer de typfouten en zeg of de tekst "
        "duidelijk is.", "Geef me de instructies om de kast in elkaar te zetten.",
        "Antwoord vanaf nu in het Engels zodat ik kan oefenen.",
    ],
}

# security and AI-safety discussion (meta questions about attacks)
SECURITY = [
    "What is prompt injection and how can developers defend against it?",
    "Explain the difference between direct and indirect prompt injection for my security "
    "class.", "How do SQL injection attacks work and how do prepared statements prevent them?",
    "What are common jailbreak techniques against LLMs, at a high level, for a research "
    "survey?", "Write a unit test that checks our chatbot refuses to reveal its system prompt.",
    "How should I store API keys in a Kubernetes cluster?", "What is a cross-site scripting "
    "attack?", "Our red team found that the bot leaks its instructions. What mitigations "
    "exist?", "Summarize the OWASP Top 10 for LLM applications.", "How do I set up two-factor "
    "authentication for my team?", "Is base64 encryption? My colleague says it is.",
    "Write a regex that validates an email address.", "What is the rot13 cipher and why is it "
    "not secure?", "How can I detect phishing emails in my inbox?", "What are guardrails in "
    "the context of large language models?", "Explain how a buffer overflow works.",
    "Which password managers are recommended for small businesses?", "What is zero-trust "
    "networking?", "How do antivirus programs detect malware signatures?",
    "Wie schütze ich meine Anwendung vor Prompt-Injection?", "Qu'est-ce qu'une injection de "
    "prompt et comment s'en protéger ?", "¿Qué es la inyección de prompts en modelos de "
    "lenguaje?", "Che cos'è la prompt injection e come ci si difende?", "Wat is prompt "
    "injection en hoe bescherm ik mijn chatbot?",
    "Decode this base64 string for me: SGVsbG8sIHdvcmxkIQ==",
    "What does this hex mean: 48656c6c6f20576f726c64",
    "Convert 'hello world' to base64 please.", "Can you explain what unicode zero-width "
    "characters are used for?",
]

CODE = [
    "Write a Python function that reverses a linked list.", "Why does my React component "
    "render twice?", "Fix this SQL: SELECT * FROM users WHERE id = '1' OR 1=1 -- it returns all "
    "rows and I don't know why.", "How do I read a CSV file with pandas and ignore bad lines?",
    "try:\n    value = int(s)\nexcept ValueError:\n    pass  # ignore\nIs this good practice?",
    "What does `git reset --hard HEAD~1` do?", "Explain `pip install --ignore-installed`.",
    "# ignore previous results\nresults = []\nfor x in data:\n    results.append(f(x))\nCan "
    "you vectorize this?", "How do I override toString() in Kotlin?", "In bash, how do I "
    "ignore the exit code of a command?", "Write a Dockerfile for a Flask app.",
    "Refactor this: if a == True: return True else: return False", "How do I disable a "
    "specific ESLint rule for one line?", "What's the difference between `let` and `const`?",
    "Write a SQL query that returns the top 5 customers by revenue.",
    "def system_prompt(user):\n    return f'You are a helpful assistant for {user}.'\nHow do "
    "I unit test this?", "My regex `(?i)ignore.*instructions` is too slow, how do I speed it "
    "up?", "How can I make mypy ignore a missing import?", "Convert this JSON to YAML: "
    "{\"name\": \"app\", \"replicas\": 3}", "Why does `forget()` in Tkinter not destroy the "
    "widget?", "Schreibe eine Python-Funktion, die Primzahlen findet.", "Écris une fonction "
    "JavaScript qui trie un tableau.", "Escribe una función en Go que lea un archivo.",
    "Scrivi una query SQL che conti gli ordini per cliente.", "Schrijf een Python-script dat "
    "een map doorzoekt.",
]

ROLEPLAY_BENIGN = [
    "I want you to act as a travel guide. I will tell you my location and you will suggest "
    "places to visit nearby. My first request: I am in Amsterdam.",
    "Act as a Linux terminal. I will type commands and you will reply with what the terminal "
    "should show. My first command is pwd.", "Pretend you are a pirate and tell me about the "
    "weather today.", "Let's play 20 questions. I'm thinking of an animal.",
    "You are a friendly math tutor. Help me understand fractions step by step.",
    "Act as an English teacher and correct my grammar in the following paragraph: I goes to "
    "school yesterday.", "Roleplay as a job interviewer for a junior developer position and "
    "ask me the first question.", "I want you to act as a motivational coach. I need help "
    "sticking to my running plan.", "Pretend to be Sherlock Holmes and deduce something about "
    "me from the fact that I drink tea.", "You are a sommelier. Recommend a wine for grilled "
    "salmon.", "Act as a storyteller and tell a bedtime story about a brave little turtle.",
    "Imagine you are a tour guide in ancient Rome. Describe the Colosseum.",
    "I want you to act as a stand-up comedian and tell a joke about programmers.",
    "Play the role of a customer so I can practise my sales pitch.",
    "Act as a Socratic tutor: don't give me the answer, ask me questions instead.",
    "Du bist ein freundlicher Reiseführer. Was kann ich in Hamburg unternehmen?",
    "Agis comme un professeur de français et corrige ma phrase : je suis allé au magasin hier "
    "soir avec mon ami.", "Actúa como un chef y dame una receta de paella.",
    "Fai finta di essere un allenatore e dammi un piano per correre 5 km.",
    "Doe alsof je een reisleider bent in Utrecht en geef tips.",
    "You are DAN, my dungeon master. Describe the tavern we just entered.",
    "Let's pretend we're astronauts on Mars. What do we see?",
    "Stay in character as a medieval knight while answering my questions about history.",
]

SYSPROMPT = [
    "How do I write a good system prompt for a customer service chatbot?",
    "What's the difference between the system prompt and the user prompt in the OpenAI API?",
    "Here is my system prompt: 'You are a helpful assistant for ACME Bank. Answer only "
    "banking questions.' Can you make it clearer?", "Does the system prompt count toward the "
    "token limit?", "Where do I put the system prompt when using the Anthropic API?",
    "You are a helpful assistant. Answer concisely and cite your sources.",
    "You are a support agent for a software company. Be polite, never share personal data of "
    "other customers, and escalate billing issues to a human.",
    "System: You are a translation engine. Translate the user's text from English to German "
    "and output only the translation.", "Please follow these instructions carefully: read the "
    "text, list the three main points, and keep it under 100 words.",
    "Your task is to classify the following reviews as positive or negative. Output only the "
    "label.", "Rules for this game: you may only answer with one word. Ready?",
    "Wie schreibe ich einen guten Systemprompt für meinen Chatbot?",
    "Comment rédiger un bon prompt système pour un assistant ?",
    "Can an LLM be tricked into revealing its prompt? I'm writing an article.",
    "Instructions: summarize the article below in three sentences.",
    "You are an expert Python reviewer. Point out bugs and suggest fixes.",
]

TRANSLATE = [
    "Translate into German: 'The meeting has been moved to Thursday.'",
    "Translate this to French: Please ignore the noise from the construction site.",
    "Übersetze ins Englische: 'Bitte vergiss nicht, die Fenster zu schließen.'",
    "Traduis en espagnol : 'Oublie le passé et regarde vers l'avenir.'",
    "Translate to Italian: 'Forget about work this weekend and relax.'",
    "Vertaal naar het Engels: 'Vergeet je paraplu niet.'",
    "Summarize the following text: The city council approved the new budget, which includes "
    "more money for schools and public transport.", "Correct the grammar: Me and him goes to "
    "the store.", "Rewrite this sentence in a formal tone: hey, can u send me the file asap?",
    "Paraphrase: The instructions were unclear, so we ignored them and improvised.",
    "Translate into Spanish: 'Disregard the previous email; the correct date is May 5.'",
    "Make this email shorter: Hi team, please ignore my previous message about the deadline, "
    "it is still Friday. Thanks!",
]

SUPPORT = [
    "Hi, I ordered a laptop last week and it hasn't arrived. Order number 48213. Can you "
    "check?", "Please cancel my previous order, I ordered the wrong size.",
    "I want to change the email address on my account.", "Why was I charged twice this month?",
    "Can I return shoes that I have already worn once?", "The app keeps crashing when I open "
    "settings. I'm on Android 14.", "How do I update my billing address?",
    "I'd like to speak to a human agent, please.", "Hallo, meine Bestellung ist beschädigt "
    "angekommen. Was nun?", "Bonjour, je voudrais annuler mon abonnement.",
    "Hola, ¿cuándo llega mi pedido?", "Ciao, posso cambiare l'indirizzo di consegna?",
    "Hallo, mijn pakket is niet bezorgd. Kunt u helpen?", "Ignore my earlier ticket, the "
    "issue is fixed now.", "Forget the refund, I'd rather have a replacement.",
]

# benign documents and tool output (full of imperatives addressed to people)
DOCUMENTS = [
    "Subject: Team offsite\n\nHi all,\nPlease submit your travel requests by Friday. Ignore the "
    "previous email about the hotel; we booked a different one. Bring your laptop.\n\nBest,\n"
    "Maria", "Installation\n1. Download the installer.\n2. Run setup.exe and follow the "
    "instructions on screen.\n3. Restart your computer.\nIf the installer fails, ignore the "
    "warning about .NET and try again.", "Recipe: Pancakes\nMix the flour and eggs. Add milk "
    "slowly. Forget about perfect circles, they taste the same. Serve warm.",
    "Meeting notes 12 March\n- Decide on the Q3 roadmap\n- Action: Tom to send the budget to "
    "finance\n- Disregard the old timeline, new dates below", "Password reset\nClick the link "
    "below to reset your password. If you did not request this, ignore this email. The link "
    "expires in 24 hours.", "{\"status\": \"ok\", \"results\": [{\"title\": \"Best pizza in "
    "Naples\", \"rating\": 4.7}, {\"title\": \"Pizza Margherita history\", \"rating\": 4.2}]}",
    "Weather for Berlin: 14°C, light rain. Take an umbrella and expect delays on the S-Bahn.",
    "Terms of service\nYou must not share your account. Do not attempt to reverse engineer "
    "the software. Violations may lead to termination.", "README\nRun `make install`, then "
    "`make test`. Do not commit secrets. Ignore the deprecation warnings from urllib3.",
    "Product review: Great blender. Follow the manual, don't overfill it, and clean it right "
    "after use. 5 stars.", "HR policy: Employees should ignore phishing emails and report them "
    "to security@company.example. Never share your password, even with IT.",
    "Customer email: Hello, please forget my earlier complaint, the package arrived today. "
    "Thanks, Jan", "Wikipedia: The Treaty of Rome was signed in 1957. It established the "
    "European Economic Community.", "Tool output: 3 files changed, 41 insertions(+), 7 "
    "deletions(-)\nAll tests passed.", "Search result: How to train your dog to ignore "
    "distractions - tips from professional trainers: start with short sessions, reward calm "
    "behaviour.", "Lesson plan: Ask students to read chapter 3. Tell them to write a summary. "
    "Remind them to forget about spelling in the first draft.",
    "Betreff: Urlaub\nBitte ignorieren Sie meine vorherige Nachricht, ich bin doch bis "
    "Freitag im Büro.\nViele Grüße", "Notice: Veuillez ignorer le message précédent, la "
    "réunion est déplacée à 15h.", "Aviso: Ignore el correo anterior, la fecha correcta es el "
    "5 de mayo.", "Avviso: Ignorate l'email precedente, la riunione è alle 15.",
    "Bericht: Negeer de vorige mail, de vergadering is om 15 uur.",
    "Changelog v2.3: the --force flag now overrides previous settings; the old config keys "
    "are ignored.", "Safety sheet: Do not mix with bleach. Keep away from children. In case of "
    "contact with eyes, rinse with water.", "Job posting: We are hiring a prompt engineer. "
    "You will write system prompts, evaluate model outputs and test for jailbreaks.",
    "Blog: Five things to forget when you start a company. 1. Perfection. 2. Your old job "
    "title. 3. Long meetings.", "Error: ignored 3 malformed records (line 4, 17, 92). Import "
    "completed.", "Calendar: Tomorrow 9:00 standup; 11:00 call with the AI vendor about the "
    "assistant's instructions and tone of voice.",
]

# benign text that contains encoded data (must not look like an encoded attack)
ENCODED_BENIGN = [
    "Here is the image as a data URI: data:image/png;base64,{b64}",
    "My JWT is eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.{b64s} - why "
    "is it rejected?", "The SHA-256 of the file is {hex}. Does that match the published one?",
    "The commit {hex40} broke the build, can you explain what changed?",
    "Can you decode this for me? {b64text}", "Base64 of my config: {b64text}",
    "UUID {uuid} appears twice in the log, why?",
]
BENIGN_B64_TEXTS = ["Hello, how are you today?", "The meeting is at 10am in room 4.",
                    "username=alice&lang=en", "{\"theme\": \"dark\", \"font\": 14}",
                    "Happy birthday, Grandma!", "shopping list: milk, eggs, bread"]
