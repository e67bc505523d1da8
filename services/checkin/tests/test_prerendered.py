"""The check-in page filled in from fragments rendered once: the same HTML as rendering it through Jinja, escaped."""

from __future__ import annotations

import pytest
from flask import Flask, render_template

from tend_checkin.prerendered import PrerenderedTemplate, marker
from tend_checkin.views import prerendered_done_page

HOSTILE = {
    "heading": "You are checked in",
    "room": '<script>alert("x")</script> & Co\'s room',
    "date": "Monday 5 October",
    "times": "09:00 to 10:00",
    "recorded_at": "09:01",
}


@pytest.fixture
def app() -> Flask:
    # The check-in package's own templates and static route, as the web app has them.
    return Flask("tend_checkin")


def test_the_done_page_is_what_jinja_renders_with_every_value_escaped(app: Flask) -> None:
    with app.test_request_context("/c/x"):
        page = prerendered_done_page()
        expected = render_template(
            "done.html",
            heading=HOSTILE["heading"],
            session={"room": HOSTILE["room"], "date": HOSTILE["date"], "times": HOSTILE["times"]},
            recorded_at=HOSTILE["recorded_at"],
        )

        html = page.render(**HOSTILE)
        # Rendered once: a second page comes from the same fragments.
        again = page.render(**{**HOSTILE, "heading": "You are already checked in"})

    assert html == expected
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co&#39;s room" in html
    assert "<title>You are checked in \u2013 Tend</title>" in html
    assert "<h1>You are already checked in</h1>" in again
    assert "\x00" not in html + again


def test_every_value_must_be_given_and_shown(app: Flask) -> None:
    with app.test_request_context("/c/x"):
        page = prerendered_done_page()
        with pytest.raises(ValueError, match="needs exactly"):
            page.render(heading="You are checked in")
        unshown = PrerenderedTemplate(
            render_template, "message.html", {"heading": marker("heading"), "text": "fixed"}, ("heading", "extra")
        )
        with pytest.raises(ValueError, match="does not show"):
            unshown.render(heading="a", extra="b")
