"""Templates: placeholders, the HTML part made from the text, escaping, and the rules on rendered output."""

from __future__ import annotations

from datetime import time

from tend_notify.templates import (
    ENQUIRY,
    REMINDER,
    Institution,
    Template,
    check_layout,
    check_rendered,
    check_template,
    check_text,
    count_words,
    render,
    render_neutral,
    text_to_html,
)

LAYOUT = '<html><body>{content}<p><a href="{support_url}">{support_name}</a></p></body></html>'
INSTITUTION = Institution(
    "uni", "Example University", "tend@example.ac.uk", "Student Support", "https://www.example.ac.uk/support",
    "Europe/London", time(21), time(8),
)  # fmt: skip
BODY = "Dear {student_name},\n\nHow are things going?\nI can help.\n\n{support_name}: {support_url}\n\n{sender_name}"


def test_rendering_fills_placeholders_and_makes_the_html_part_from_the_text() -> None:
    values = {**INSTITUTION.values(), "student_name": "Sam", "sender_name": "Dr Alex Example"}
    rendered = render("Hello {student_name}", BODY, LAYOUT, values)
    assert rendered.subject == "Hello Sam"
    assert rendered.text_body.startswith("Dear Sam,\n\nHow are things going?\nI can help.")
    assert "<p>Dear Sam,</p>" in rendered.html_body
    assert "<p>How are things going?<br>\nI can help.</p>" in rendered.html_body
    assert '<a href="https://www.example.ac.uk/support">https://www.example.ac.uk/support</a>' in rendered.html_body
    assert '<p><a href="https://www.example.ac.uk/support">Student Support</a></p>' in rendered.html_body


def test_values_are_escaped_in_html_and_cannot_inject_markup() -> None:
    values = {**INSTITUTION.values(), "student_name": "<script>alert(1)</script> O'Brien", "sender_name": "A & B"}
    rendered = render("Hi", BODY, LAYOUT, values)
    assert "<script>" not in rendered.html_body
    assert "&lt;script&gt;" in rendered.html_body
    assert "A &amp; B" in rendered.html_body
    # A value that looks like a placeholder is not filled in again.
    again = render("Hi", "{student_name} {support_url}", LAYOUT, {**values, "student_name": "{support_url}"})
    assert again.text_body == "{support_url} https://www.example.ac.uk/support"


def test_unknown_placeholders_and_a_missing_support_link_are_named() -> None:
    problems = check_text("Hi {first_name}", "Dear {studnet_name}, how are you?", ENQUIRY)
    assert {(p.field, p.rule) for p in problems} == {
        ("subject", "unknown_placeholder"),
        ("body", "unknown_placeholder"),
        ("body", "says_where_support_is"),
    }
    assert any("{studnet_name} cannot be filled in" in p.message for p in problems)


def test_digest_templates_cannot_name_a_student() -> None:
    problems = check_text("{student_name} may need a word", "See {portal_url}", REMINDER)
    assert [p.rule for p in problems] == ["unknown_placeholder"]


def test_a_layout_needs_its_content_once_and_is_checked_as_read() -> None:
    assert [p.rule for p in check_layout("<p>no content</p>")] == ["content_once"]
    flagged = check_layout("<body>{content}<p>You were <b>flag</b>ged</p></body>")
    assert [p.rule for p in flagged] == ["no_flags"]


def test_a_whole_template_is_checked_rendered() -> None:
    good = Template("uni", "t", ENQUIRY, "How are you, {student_name}?", BODY, LAYOUT)
    assert check_template(good) == []
    bad_layout = Template("uni", "t", ENQUIRY, "Hi", BODY, "<body>{content}<p>Your indicators</p></body>")
    assert [p.rule for p in check_template(bad_layout)] == ["no_indicator_terms", "no_indicator_terms"]


def test_rendered_output_rules_apply_to_what_the_reader_sees() -> None:
    rendered = render_neutral("Hi", "Your 3 lectures {support_url}", LAYOUT, INSTITUTION)
    fields = {p.field for p in check_rendered(rendered)}
    assert fields == {"rendered text", "rendered HTML"}


def test_text_to_html_links_urls_without_trailing_punctuation() -> None:
    assert (
        text_to_html("See https://x.example/a.") == '<p>See <a href="https://x.example/a">https://x.example/a</a>.</p>'
    )


def test_counts_read_as_words() -> None:
    assert [count_words(n) for n in (1, 3, 12, 13)] == ["one", "three", "twelve", "13"]
