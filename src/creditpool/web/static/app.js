// A little progressive enhancement: every page works without it.
document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const field = document.querySelector(copy.dataset.copy);
    field.select();
    navigator.clipboard?.writeText(field.value).catch(() => document.execCommand("copy"));
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
});
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
