"""Templates and rendering.

A template is a subject and a plain-text body with placeholders such as {student_name}, and an HTML layout that
wraps the body. The HTML part is always made from the plain-text body, so a sender's edit changes both parts alike
and the two never say different things. Values are filled in at send time; in HTML they are escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time

from tend_notify.content_rules import Problem, check_body, check_subject, forbidden_words

ENQUIRY = "enquiry"
REMINDER = "reminder"
ESCALATION = "escalation"
KINDS = (ENQUIRY, REMINDER, ESCALATION)

DEFAULT_ENQUIRY_TEMPLATE = "supportive_enquiry"
REMINDER_TEMPLATE = "follow_up_reminder"
ESCALATION_TEMPLATE = "follow_up_escalation"

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_INSTITUTION_PLACEHOLDERS = ("institution_name", "support_name", "support_url")
PLACEHOLDERS: Mapping[str, tuple[str, ...]] = {
    ENQUIRY: ("student_name", "sender_name", "sender_email", *_INSTITUTION_PLACEHOLDERS),
    # Digests to staff: a count and a link, never a student's name.
    REMINDER: ("recipient_name", "count", "count_words", "portal_url", *_INSTITUTION_PLACEHOLDERS),
    ESCALATION: ("recipient_name", "count", "count_words", "portal_url", *_INSTITUTION_PLACEHOLDERS),
}
# What an enquiry must contain: the offer of help says where to find support.
_REQUIRED: Mapping[str, tuple[str, ...]] = {ENQUIRY: ("support_url",), REMINDER: ("portal_url",), ESCALATION: ()}
# Stand-ins for personal values, to check what a template renders to without anyone's data.
NEUTRAL_VALUES: Mapping[str, str] = {
    "student_name": "Sam",
    "sender_name": "Alex Example",
    "sender_email": "alex.example@example.ac.uk",
    "recipient_name": "Alex Example",
    "count": "3",
    "count_words": "three",
}
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)]")
_NUMBER_WORDS = (
    "no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
)  # fmt: skip


@dataclass(frozen=True)
class Institution:
    """Who the messages are from, where students find support, and when students are not written to."""

    id: str
    name: str
    from_address: str
    support_name: str
    support_url: str
    time_zone: str
    quiet_hours_start: time
    quiet_hours_end: time

    def values(self) -> dict[str, str]:
        return {"institution_name": self.name, "support_name": self.support_name, "support_url": self.support_url}


@dataclass(frozen=True)
class Template:
    institution_id: str
    name: str
    kind: str
    subject: str
    body: str
    html_layout: str


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text_body: str
    html_body: str


def count_words(count: int) -> str:
    """A count as a word, as a person would write it ("three of your tutees"), figures beyond twelve."""
    return _NUMBER_WORDS[count] if 0 <= count < len(_NUMBER_WORDS) else str(count)


def check_placeholders(field: str, text: str, kind: str) -> list[Problem]:
    allowed = PLACEHOLDERS[kind]
    unknown = sorted({name for name in PLACEHOLDER.findall(text) if name not in allowed})
    if not unknown:
        return []
    names = ", ".join("{" + name + "}" for name in unknown)
    usable = ", ".join("{" + name + "}" for name in allowed)
    return [Problem(field, "unknown_placeholder", f"{names} cannot be filled in; use {usable}")]


def check_text(subject: str, body: str, kind: str) -> list[Problem]:
    """The rules for a subject and body with placeholders, as a template or a sender's edit has them."""
    problems = check_subject(subject) + check_body(body)
    problems += check_placeholders("subject", subject, kind) + check_placeholders("body", body, kind)
    for name in _REQUIRED[kind]:
        if "{" + name + "}" not in body:
            problems.append(
                Problem("body", "says_where_support_is", f"must keep {{{name}}}, so the reader knows where to go")
            )
    return problems


def check_layout(layout: str) -> list[Problem]:
    problems = []
    if layout.count("{content}") != 1:
        problems.append(Problem("html_layout", "content_once", "must contain {content} exactly once"))
    unknown = sorted({n for n in PLACEHOLDER.findall(layout) if n != "content" and n not in _INSTITUTION_PLACEHOLDERS})
    if unknown:
        names = ", ".join("{" + n + "}" for n in unknown)
        problems.append(Problem("html_layout", "unknown_placeholder", f"{names} cannot be filled in a layout"))
    return problems + forbidden_words("html_layout", visible_text(layout))


def check_template(template: Template) -> list[Problem]:
    if template.kind not in KINDS:
        return [Problem("kind", "known_kind", f"must be one of {', '.join(KINDS)}")]
    problems = check_text(template.subject, template.body, template.kind) + check_layout(template.html_layout)
    return problems + check_rendered(render_neutral(template.subject, template.body, template.html_layout, None))


def check_rendered(rendered: RenderedMessage) -> list[Problem]:
    """The rules applied to a rendered message, its HTML part read as the reader sees it."""
    return (
        forbidden_words("rendered subject", rendered.subject)
        + forbidden_words("rendered text", rendered.text_body)
        + forbidden_words("rendered HTML", visible_text(rendered.html_body))
    )


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replaces each known placeholder; anything else in braces is left as written (checked beforehand)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _paragraph_html(paragraph: str) -> str:
    parts, position = [], 0
    for match in _URL.finditer(paragraph):
        parts.append(html.escape(paragraph[position : match.start()]))
        url = html.escape(match.group(0), quote=True)
        parts.append(f'<a href="{url}">{url}</a>')
        position = match.end()
    parts.append(html.escape(paragraph[position:]))
    return "<p>" + "".join(parts).replace("\n", "<br>\n") + "</p>"


def text_to_html(text: str) -> str:
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]
    return "\n".join(_paragraph_html(p) for p in paragraphs)


def render(subject: str, body: str, layout: str, values: Mapping[str, str]) -> RenderedMessage:
    """Fills in `values`; the HTML part is the filled-in body in the layout, every value escaped."""
    text = fill(body, values)
    layout_values = {name: html.escape(value) for name, value in values.items()}
    html_body = fill(layout.replace("{content}", "\0content\0"), layout_values).replace(
        "\0content\0", text_to_html(text)
    )
    return RenderedMessage(subject=fill(subject, values).strip(), text_body=text, html_body=html_body)


def render_neutral(
    subject: str,
    body: str,
    layout: str,
    institution: Institution | None,
    portal_url: str = "https://tend.example.ac.uk",
) -> RenderedMessage:
    """The message rendered with stand-ins for every personal value: what the rules check."""
    values = dict(NEUTRAL_VALUES)
    values.update({"portal_url": portal_url, "institution_name": "the University"})
    values.update({"support_name": "Student Support", "support_url": "https://www.example.ac.uk/support"})
    if institution is not None:
        values.update(institution.values())
    return render(subject, body, layout, values)


def visible_text(markup: str) -> str:
    """Roughly what a reader sees of HTML: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]*>", " ", markup))
