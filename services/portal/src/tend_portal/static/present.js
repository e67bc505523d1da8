// Keeps the presenter screen's code and QR code current: asks for the code when it rotates and swaps both.
// Without JavaScript the page refreshes itself instead (a meta refresh inside <noscript>).
(function () {
  "use strict";
  var body = document.body;
  var codeUrl = body.getAttribute("data-code-url");
  var codeElement = document.getElementById("presenter-code");
  var qrElement = document.getElementById("presenter-qr");
  var failures = 0;

  function schedule(seconds) {
    window.setTimeout(refresh, Math.max(1, seconds) * 1000 + 250);
  }

  function show(screen) {
    if (codeElement.textContent !== screen.code) {
      codeElement.textContent = screen.code;
      // The SVG is made by the portal from the check-in address; it carries no text from anyone.
      qrElement.innerHTML = screen.qr_svg;
    }
    codeElement.classList.remove("is-stale");
  }

  function refresh() {
    fetch(codeUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) {
          // Signed out: a full load goes to the sign-in page.
          window.location.reload();
          return null;
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (screen) {
        if (screen === null) {
          return;
        }
        failures = 0;
        show(screen);
        schedule(screen.refresh_in_seconds);
      })
      .catch(function () {
        failures += 1;
        // An old code stops working after one more step; show that it may be out of date.
        if (failures > 1) {
          codeElement.classList.add("is-stale");
        }
        schedule(Math.min(2 * failures, 10));
      });
  }

  if (codeUrl && codeElement && qrElement) {
    schedule(Number(body.getAttribute("data-refresh-in")) || 5);
  }
})();
