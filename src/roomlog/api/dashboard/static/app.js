// roomlog dashboard: the viewer's time zone, the live rooms panel, live session pages.
"use strict";
(function () {
  // -- time zone: pages are rendered in the zone the `roomlog_tz` cookie names ---------------
  const UTC_KEY = "roomlog-utc";
  const browserZone = (Intl.DateTimeFormat().resolvedOptions().timeZone) || "UTC";
  function wanted() {
    return window.localStorage.getItem(UTC_KEY) === "1" ? "UTC" : browserZone;
  }
  function setZone(zone) {
    document.cookie = "roomlog_tz=" + encodeURIComponent(zone) +
      "; path=/; max-age=31536000; SameSite=Strict";
  }
  const shown = document.body.dataset.zone;
  setZone(wanted());
  if (shown && shown !== wanted() && !window.sessionStorage.getItem("roomlog-zone-reload")) {
    // Once per tab: a page rendered before the browser named its zone.
    window.sessionStorage.setItem("roomlog-zone-reload", "1");
    window.location.reload();
    return;
  }
  if (shown === wanted()) window.sessionStorage.removeItem("roomlog-zone-reload");
  const zoneSwitch = document.getElementById("zone-switch");
  if (zoneSwitch && browserZone !== "UTC") {
    zoneSwitch.hidden = false;
    zoneSwitch.addEventListener("click", function () {
      window.localStorage.setItem(UTC_KEY, wanted() === "UTC" ? "0" : "1");
      setZone(wanted());
      window.location.reload();
    });
  }

  // -- the overview's live panel --------------------------------------------------------------
  const panel = document.querySelector("[data-refresh]");
  if (panel) {
    const refresh = async function () {
      if (document.hidden) return;
      try {
        const answer = await fetch(panel.dataset.refresh, { credentials: "same-origin" });
        if (answer.status === 401) { window.location.assign("/sign-in?next=/"); return; }
        if (answer.ok) panel.innerHTML = await answer.text();
      } catch (error) {
        // Offline for a moment: keep what is shown and try again at the next tick.
      }
    };
    setInterval(refresh, 5000);
    document.addEventListener("visibilitychange", refresh);
  }

  // -- an ongoing session's page: read it again every few seconds -----------------------------
  const main = document.querySelector("main[data-reload]");
  if (main) {
    const every = 1000 * Number(main.dataset.reload);
    const reload = async function () {
      if (document.hidden) return;
      try {
        const answer = await fetch(window.location.href, { credentials: "same-origin" });
        if (!answer.ok || answer.redirected) return;
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
        const next = fresh.querySelector("main");
        if (!next) return;
        main.innerHTML = next.innerHTML;
        if (!next.hasAttribute("data-reload")) { main.removeAttribute("data-reload"); clearInterval(timer); }
      } catch (error) {
        // Offline for a moment: try again at the next tick.
      }
    };
    const timer = setInterval(reload, every);
  }
})();
