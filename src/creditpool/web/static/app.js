// A little progressive enhancement: every page works without it.
document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const field = document.querySelector(copy.dataset.copy);
    field.select();
    // The clipboard API exists only on https and localhost; elsewhere, the old way.
    if (navigator.clipboard) {
      navigator.clipboard.writeText(field.value).catch(() => document.execCommand("copy"));
    } else {
      document.execCommand("copy");
    }
    copy.textContent = "Copied";
    setTimeout(() => { copy.textContent = "Copy"; }, 1500);
  }
});
document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-tick-all]");
  if (all) {
    document.querySelectorAll(`input[name="${all.dataset.tickAll}"][form]`)
      .forEach((box) => { box.checked = all.checked; });
  }
  // "Every matching member" only stands while every row of the page is ticked.
  if ((all && !all.checked) || (event.target.name === "member_ids" && !event.target.checked)) {
    document.querySelectorAll("[data-every-matching]").forEach((box) => { box.checked = false; });
  }
});
document.addEventListener("submit", (event) => {
  // A form asks first; so does a button whose field (data-confirm-empty) was left empty.
  const button = event.submitter;
  const field = button?.dataset.confirmEmpty;
  const asks = field ? !event.target.elements[field].value.trim() : true;
  const message = field ? button.dataset.confirm : event.target.dataset.confirm;
  if (asks && message && !window.confirm(message)) event.preventDefault();
});
// A refused form comes back with its reason beside it: bring that into view.
window.addEventListener("DOMContentLoaded", () => {
  const refusal = document.querySelector("main .error[role=alert]");
  if (refusal) refusal.scrollIntoView({ block: "center" });
});
