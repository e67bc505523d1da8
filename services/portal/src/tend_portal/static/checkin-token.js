// Posts the check-in token to the check-in host straight away; the visible "Continue" button does the same
// for browsers without JavaScript.
(function () {
  "use strict";
  var form = document.getElementById("checkin-token-form");
  if (form) {
    form.submit();
  }
})();
