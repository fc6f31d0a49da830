// asynctask web console: the one script (no inline script is allowed by the page's CSP).
// 1. /login#TOKEN (the link `asynctask web-token` prints): the token never reaches the
//    server in the URL; it is posted with the login form, and taken off the address bar.
// 2. Forms with data-confirm ask first (cancel, delete).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  const token = decodeURIComponent(window.location.hash.slice(1));
  if (form && token) {
    history.replaceState(null, "", window.location.pathname);
    document.getElementById("token").value = token;
    form.submit();
  }
  for (const confirmed of document.querySelectorAll("form[data-confirm]")) {
    confirmed.addEventListener("submit", (event) => {
      if (!window.confirm(confirmed.dataset.confirm)) event.preventDefault();
    });
  }
});
