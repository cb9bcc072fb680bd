// Small behaviours the console's markup asks for with data- attributes
// (the Content-Security-Policy allows no inline handlers).
document.addEventListener("focusin", function (event) {
  if (event.target.matches && event.target.matches("[data-select-on-focus]")) {
    event.target.select();
  }
});
document.addEventListener("change", function (event) {
  if (event.target.matches && event.target.matches("[data-submit-on-change]") && event.target.form) {
    event.target.form.requestSubmit ? event.target.form.requestSubmit() : event.target.form.submit();
  }
});
