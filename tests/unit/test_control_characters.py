"""Request bodies with a control character (NUL …) are refused up front on every backend (PostgreSQL refuses
NUL in text). The check screens a body at C speed first (json.dumps and one regular expression) and walks it
only when the screen finds something: the screen may say "maybe" wrongly, never "no" wrongly."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.schemas import CONTROL_CHARACTERS, SendMessageRequest, _control_characters, _may_hold_control_characters

text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2030), max_size=12)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=600, deadline=None)
@given(json_values)
def test_the_screen_never_misses_what_the_walk_finds(value):
    if _control_characters(value) is not None:
        assert _may_hold_control_characters(value)


@pytest.mark.parametrize("code", [c for c in range(0x80) if CONTROL_CHARACTERS.match(chr(c))])
def test_every_refused_character_is_refused_in_a_request_with_its_pointer(code):
    body = {"type": "dr-plan", "purpose": "reintegration", "recipients": ["municipality:0363"],
            "payload": {"sections": {"work": {"summary": f"ok{chr(code)}"}}}}
    with pytest.raises(ValidationError) as refused:
        SendMessageRequest.model_validate(body)
    [error] = refused.value.errors()
    assert error["type"] == "control_characters" and error["ctx"]["pointer"] == "/payload/sections/work/summary"


def test_tab_newline_and_text_that_only_looks_like_an_escape_pass():
    body = {"type": "dr-plan", "purpose": "reintegration", "recipients": ["municipality:0363"],
            "payload": {"note": "regel 1\nregel 2\tmet tab\r\n", "path": "C:\\bestanden\\u0000\\b"}}
    assert SendMessageRequest.model_validate(body).payload == body["payload"]
