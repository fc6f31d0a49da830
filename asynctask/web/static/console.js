// asynctask web console: the one script (no inline script is allowed by the page's CSP).
// 1. /login#TOKEN (the link `asynctask web-token` prints): the token never reaches the
//    server in the URL; it is posted with the login form, and taken off the address bar.
// 2. Forms with data-confirm ask first (cancel, delete); the listener is on the document,
//    so forms a live update brings in ask too.
// 3. Live updates: a page with a #live region (overview, task) follows /events (server-sent
//    events) and puts each update's HTML, escaped by the server as the page was, in place.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login");
  const token = decodeURIComponent(window.location.hash.slice(1));
  if (form && token) {
    history.replaceState(null, "", window.location.pathname);
    document.getElementById("token").value = token;
    form.submit();
  }
  document.addEventListener("submit", (event) => {
    const confirmed = event.target.closest("form[data-confirm]");
    if (confirmed && !window.confirm(confirmed.dataset.confirm)) event.preventDefault();
  });
  const region = document.getElementById("live");
  if (region && region.dataset.events && window.EventSource) {
    const source = new EventSource(region.dataset.events);
    source.addEventListener("update", (event) => {
      region.innerHTML = event.data;
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    });
    source.addEventListener("end", () => source.close());
  }
});
