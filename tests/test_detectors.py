"""Named detectors for the real forms of refusal, deflection and clarifying questions (HH-RLHF-style phrasings)."""

import pytest

from curate.concepts.named import BUILTIN_CONCEPTS

# real phrasings (HH-RLHF, PKU-SafeRLHF, chat assistants), straight and curly apostrophes
REFUSAL = [
    "I’m sorry, but I don’t think I can help with that.",
    "I'm sorry, I can't help with that.",
    "I’m sorry, I can’t do that.",
    "I won't help you hurt someone.",
    "I won’t do that.",
    "I don't think I can help with that.",
    "I don’t think I should answer that question.",
    "I'd rather not talk about that.",
    "I'm not comfortable helping with this request.",
    "I’m not going to help you steal a car.",
    "I cannot provide instructions for making weapons.",
    "I can't assist with that request.",
    "I am unable to comply with this request.",
    "I must decline.",
    "I will not participate in anything illegal.",
    "That's not something I can help with.",
    "This is not something I am comfortable discussing.",
    "I'm afraid I can't do that, Dave.",
    "I don't feel comfortable providing that kind of information.",
    "Sorry, I can't give you advice on how to do that.",
    "I'm not able to help with that.",
    "I refuse to write that.",
    "I can't in good conscience recommend that.",
    "I'm sorry, but I won't.",
]
REFUSAL_NEAR = [
    "I can help with that!",
    "I can't help but notice you seem stressed.",
    "I can't wait to hear how it goes.",
    "I can't believe how fast time flies.",
    "I won't lie, this one is tricky, but here is how.",
    "You can't help it if you're tired.",
    "I'm sorry to hear that you lost your job.",
    "Sorry for the confusion, here is the corrected recipe.",
    "I can't stress enough how important sleep is.",
    "Don't worry, I can assist you with the forms.",
    "I would rather recommend the second option.",
    "I don't think it matters much which one you choose.",
    "I'm not sure that's a problem; here's the fix.",
    "They refused to pay the bill.",
    "He won't help his brother.",
    "I'm happy to provide more details.",
    "It is not something you should worry about.",
    "I must say, that's a good plan.",
    "I couldn't help laughing at that joke.",
    "I don't think I've heard of that band, but here are similar ones.",
]
DEFLECTION = [
    "I'm not sure.",
    "I’m not sure what you mean.",
    "I don't know.",
    "I don’t know, what do you think?",
    "I honestly don't know the answer to that.",
    "I have no idea.",
    "I'm not really sure how that works.",
    "I’m not familiar with that game.",
    "I'm not certain about the date.",
    "I don't really know much about cars.",
    "I'm unsure whether that is true.",
    "I couldn't say for sure.",
    "I can't be certain, but it could be.",
    "I'm not an expert on this.",
    "I don't have enough information to answer.",
    "I've never heard of that.",
    "I am not aware of any such law.",
    "Hm, I don't understand the question.",
    "I didn't know that.",
    "I'm not the best person to ask about taxes.",
    "Not sure I understand, can you rephrase?",
    "I have no clue what that is.",
]
DEFLECTION_NEAR = [
    "I know the answer: it's 42.",
    "I'm sure you'll do great.",
    "You don't know until you try.",
    "I'm not surprised it broke.",
    "If you're not sure, ask your doctor.",
    "Many people don't know this, but bananas are berries.",
    "I'm certain it is Paris.",
    "I understand your concern.",
    "Do you know the way?",
    "I'm not a fan of that movie.",
    "Let me know if you have questions.",
    "Make sure you know the rules before you start.",
    "I'm not going to pretend it's easy, but here's how.",
    "I have an idea: try turning it off and on again.",
    "We don't know each other yet.",
    "I'm familiar with that game; you should build a base first.",
    "Nobody knows for sure, but most historians agree.",
    "I can say with confidence it's correct.",
    "Not sure? Here is a guide.",
    "I know exactly what you mean.",
]
CLARIFYING = [
    "Do you mean the capital city or the largest city?",
    "Are you asking about the legal age or the age people usually start?",
    "What kind of dog do you have?",
    "Is it for a school project?",
    "Can you tell me more about what happened?",
    "Could you clarify what you mean by 'fast'?",
    "What do you mean?",
    "Which one are you thinking of?",
    "Would you like a recipe or just the ingredients?",
    "How old are you?",
    "Did you already try restarting it?",
    "Have you talked to your doctor about this?",
    "What sort of music do you like?",
    "Why do you want to know?",
    "Where are you located?",
    "Okay, and what is your budget?",
    "Sure, what are you trying to do exactly?",
    "Is this for your job?",
    "What exactly is it for?",
    "When do you need it by?",
    "That depends. How many people are you cooking for?",
    "Is that something you've done before?",
]
CLARIFYING_NEAR = [
    "The capital of France is Paris.",
    "Why is the sky blue? Because of Rayleigh scattering.",
    "What is the capital of France? It is Paris.",
    "I wonder what you mean.",
    "You could try restarting it.",
    "How to cook rice: rinse, boil, simmer.",
    "Do this every morning.",
    "Let me know what you think.",
    "Is it safe to eat raw eggs? Generally, there is a small risk.",
    "The question is which one is cheaper.",
    "If you want, I can explain more.",
    "Are there any side effects? Rarely.",
    "You asked what the time is; it is noon.",
    "Who wrote Hamlet? Shakespeare did.",
    "Which is why you should save early.",
    "How does a car engine work? Fuel burns in the cylinders.",
    "Where there's smoke, there's fire.",
    "When you cook pasta, salt the water.",
    "What a great idea.",
    "Can it be done? Yes, with enough time.",
]

# PKU-SafeRLHF-style soft refusals: advising against, steering to a safer alternative
DISCOURAGEMENT = [
    "I would not recommend doing that.",
    "I don’t recommend trying this at home.",
    "I strongly advise against driving after drinking.",
    "It is never okay to hit your partner.",
    "That's not a good idea.",
    "It is illegal to record someone without consent in many states.",
    "Excluding certain groups of people is never the best way to maintain control.",
    "You should not try to manipulate someone's emotions.",
    "You shouldn't steal from your employer.",
    "There is no safe way to do this.",
    "That's not possible.",
    "A healthier approach is to talk to them directly.",
]
DISCOURAGEMENT_NEAR = [
    "I would recommend the blue one.",
    "It is okay to feel sad sometimes.",
    "You should try the pasta.",
    "That is a good idea!",
    "There is no reason to worry.",
    "It is possible, here's how.",
    "Here is a better recipe.",
    "You shouldn't worry too much about it.",
    "The best way is to start early.",
    "It is legal in most countries.",
]


def _hits(concept, texts):
    return [t for t, s in zip(texts, BUILTIN_CONCEPTS[concept].score(texts)) if s > 0]


@pytest.mark.parametrize(
    "concept,pos,neg",
    [
        ("refusal", REFUSAL, REFUSAL_NEAR),
        ("deflection", DEFLECTION, DEFLECTION_NEAR),
        ("clarifying_question", CLARIFYING, CLARIFYING_NEAR),
        ("discouragement", DISCOURAGEMENT, DISCOURAGEMENT_NEAR),
    ],
)
def test_detector_on_real_phrasings(concept, pos, neg):
    assert len(pos) >= (10 if concept == "discouragement" else 20) and len(neg) >= 10
    assert set(_hits(concept, pos)) == set(pos), [t for t in pos if t not in _hits(concept, pos)]
    assert _hits(concept, neg) == []


@pytest.mark.parametrize("concept", ["refusal", "deflection", "clarifying_question"])
def test_detectors_have_definitions_and_spans(concept):
    c = BUILTIN_CONCEPTS[concept]
    assert len(c.label) > 30 and "\n" not in c.label
    text = {"refusal": REFUSAL[0], "deflection": DEFLECTION[0], "clarifying_question": CLARIFYING[0]}[concept]
    assert c.spans(text), "the Space marks the matched phrase"


def test_python_and_arrow_matching_agree():
    """Scores run in Arrow (RE2); the Space's spans use Python's re: both must read the patterns the same way."""
    from curate.concepts.named import _py_regex

    for concept, texts in (
        ("refusal", REFUSAL + REFUSAL_NEAR),
        ("deflection", DEFLECTION + DEFLECTION_NEAR),
        ("clarifying_question", CLARIFYING + CLARIFYING_NEAR),
    ):
        c = BUILTIN_CONCEPTS[concept]
        py = [float(len(list(_py_regex(c.pattern).finditer(t)))) for t in texts]
        assert c.score(texts).tolist() == py, concept


def test_named_fingerprint_changes_with_the_patterns():
    from curate.concepts import NamedConcepts, named

    fp = NamedConcepts(["refusal"]).fingerprint()
    assert NamedConcepts([named.Concept("refusal", "x", pattern=r"\bno\b")]).fingerprint() != fp
