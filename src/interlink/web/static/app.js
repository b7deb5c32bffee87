// Interlink UI: the little a page does with JavaScript. Everything works without it too.
"use strict";

// A form button with data-confirm asks first.
document.addEventListener("submit", function (event) {
  var button = event.submitter || event.target.querySelector("[data-confirm]");
  var question = button && button.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A page with data-refresh="N" (runs in flight) reloads its main part every N seconds,
// as long as the new version still says so. Paused while the tab is hidden or a form field
// has the focus (someone is typing a filter).
(function () {
  var seconds = Number(document.body.getAttribute("data-refresh"));
  if (!seconds) {
    return;
  }
  function busy() {
    var active = document.activeElement;
    return document.hidden || (active && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName));
  }
  function refresh() {
    if (busy()) {
      window.setTimeout(refresh, seconds * 1000);
      return;
    }
    fetch(window.location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (answer) {
        if (!answer.ok || answer.redirected) {
          throw new Error("status " + answer.status);
        }
        return answer.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var main = fresh.querySelector("main");
        if (main) {
          document.querySelector("main").replaceWith(main);
        }
        if (fresh.body.getAttribute("data-refresh")) {
          window.setTimeout(refresh, seconds * 1000);
        } else {
          document.body.removeAttribute("data-refresh");
        }
      })
      .catch(function () {
        window.setTimeout(refresh, seconds * 4000);
      });
  }
  window.setTimeout(refresh, seconds * 1000);
})();
