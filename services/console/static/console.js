// Live overview: the server pushes the rendered live section over Server-Sent Events; we swap it in.
// EventSource reconnects by itself after a broker or console restart; if the stream is refused for good
// (session ended) the page reloads, which leads to the login page.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var badge = document.getElementById("link-state");
  if (!live || !window.EventSource) { return; }
  function state(text, tone) {
    if (badge) { badge.textContent = text; badge.className = "badge " + tone; }
  }
  var source = null;
  function connect() {
    source = new EventSource("/events");
    source.addEventListener("open", function () { state("LIVE", "ok"); });
    source.addEventListener("live", function (e) {
      live.innerHTML = e.data;
      state("LIVE " + new Date().toLocaleTimeString(), "ok");
    });
    source.addEventListener("ping", function () { state("LIVE " + new Date().toLocaleTimeString(), "ok"); });
    source.addEventListener("logout", function () { window.location.reload(); });
    source.addEventListener("renew", function () { source.close(); window.location.reload(); });
    source.addEventListener("error", function () {
      state("RECONNECTING", "bad");
      if (source.readyState === EventSource.CLOSED) {
        // Refused (e.g. 401 after a restart with another key): try again a little later, then reload.
        setTimeout(function () { window.location.reload(); }, 5000);
      }
    });
  }
  // Only after `load`: a stream opened earlier keeps the page "loading" for ever in some browsers.
  if (document.readyState === "complete") { connect(); } else { window.addEventListener("load", connect); }
})();
