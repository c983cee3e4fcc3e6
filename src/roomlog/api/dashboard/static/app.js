// roomlog dashboard: refresh the live rooms panel without reloading the page.
"use strict";
(function () {
  const panel = document.querySelector("[data-refresh]");
  if (!panel) return;
  const every = 5000;
  async function refresh() {
    if (document.hidden) return;
    try {
      const answer = await fetch(panel.dataset.refresh, { credentials: "same-origin" });
      if (answer.status === 401) { window.location.assign("/sign-in?next=/"); return; }
      if (answer.ok) panel.innerHTML = await answer.text();
    } catch (error) {
      // Offline for a moment: keep what is shown and try again at the next tick.
    }
  }
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
