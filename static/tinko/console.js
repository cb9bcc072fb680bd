/* The console's few behaviours, without inline script (the console's Content-Security-Policy allows only our files).
   Loaded in <head> without defer so that the "js" class is set before the first paint: the phone menu starts
   closed instead of flashing open. Everything works without this file too, only less conveniently. */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");

  function ready(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  // The phone menu: one button opens and closes the navigation, the organization switcher and the account links.
  function setMenu(button, open) {
    document.body.classList.toggle("nav-open", open);
    button.setAttribute("aria-expanded", open ? "true" : "false");
  }

  // Copying: navigator.clipboard where the page is a secure context, else a selection and execCommand.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) resolve(); else reject(new Error("copy refused"));
    });
  }

  // data-copy-text="the value", or data-copy="#element" (an input's value, else the element's text).
  function valueToCopy(button) {
    if (button.hasAttribute("data-copy-text")) return button.getAttribute("data-copy-text");
    var target = null;
    try { target = document.querySelector(button.getAttribute("data-copy")); } catch (e) { target = null; }
    if (!target) return null;
    return target.tagName === "INPUT" || target.tagName === "TEXTAREA" ? target.value : target.textContent.trim();
  }

  ready(function () {
    var toggle = document.querySelector(".menu-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        setMenu(toggle, !document.body.classList.contains("nav-open"));
      });
      document.addEventListener("keydown", function (event) {
        if (event.key === "Escape" && document.body.classList.contains("nav-open")) {
          setMenu(toggle, false);
          toggle.focus();
        }
      });
    }

    // A select that changes its form at once (organization, language); a <noscript> button covers no-JS.
    document.addEventListener("change", function (event) {
      var el = event.target;
      if (el.matches && el.matches("select[data-autosubmit], [data-submit-on-change]") && el.form) {
        if (el.form.requestSubmit) el.form.requestSubmit(); else el.form.submit();
      }
    });

    // Secrets shown once: focusing the field selects it whole.
    document.addEventListener("focusin", function (event) {
      var el = event.target;
      if (el.matches && el.matches("input.secret[readonly], [data-select-on-focus]")) el.select();
    });

    // Delegated, so rows swapped in by htmx get working buttons too.
    document.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest("button[data-copy], button[data-copy-text]") : null;
      if (!button) return;
      var value = valueToCopy(button);
      if (value === null) return;
      event.preventDefault();
      // The visible word changes ("Copied"); a visually hidden part naming the value stays.
      var text = button.querySelector(".copy-text") || button;
      var label = button.getAttribute("data-label") || text.textContent;
      button.setAttribute("data-label", label);
      copyText(value).then(function () {
        text.textContent = button.getAttribute("data-copied") || label;
        button.setAttribute("data-copied-now", "");
        window.setTimeout(function () {
          text.textContent = label;
          button.removeAttribute("data-copied-now");
        }, 1500);
      }, function () {
        text.textContent = button.getAttribute("data-copy-failed") || label;
      });
    });
  });
})();
