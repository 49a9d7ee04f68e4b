// Sorting (click a column header) and filtering (selects, search) of the rollout table. The state lives in the
// URL's #fragment (e.g. #resolved=unresolved&sort=8&order=desc), so a filtered view can be bookmarked or shared.
(() => {
  const table = document.getElementById("rollouts");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const headers = Array.from(table.tHead.rows[0].cells);
  const selects = Array.from(document.querySelectorAll("select[data-filter]"));
  const search = document.getElementById("search");
  const shown = document.getElementById("shown");
  const state = new URLSearchParams(location.hash.slice(1));

  const filter = () => {
    const needle = search.value.trim().toLowerCase();
    let count = 0;
    for (const row of rows) {
      const visible = selects.every((select) => !select.value || row.dataset[select.dataset.filter] === select.value)
        && (!needle || row.dataset.search.includes(needle));
      row.hidden = !visible;
      count += visible ? 1 : 0;
    }
    shown.textContent = String(count);
  };
  const sort = (column, order) => {
    headers.forEach((header) => delete header.dataset.order);
    headers[column].dataset.order = order;
    const key = (row) => row.cells[column]?.dataset.sort ?? row.cells[column]?.textContent.trim() ?? "";
    rows.sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      const [nx, ny] = [Number(x), Number(y)];
      const cmp = x !== "" && y !== "" && !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x.localeCompare(y);
      return order === "desc" ? -cmp : cmp;
    });
    rows.forEach((row) => body.appendChild(row));
  };
  const remember = () => {
    const next = new URLSearchParams();
    selects.forEach((select) => select.value && next.set(select.dataset.filter, select.value));
    if (search.value) next.set("q", search.value);
    const column = headers.findIndex((header) => header.dataset.order);
    if (column >= 0) { next.set("sort", String(column)); next.set("order", headers[column].dataset.order); }
    history.replaceState(null, "", next.toString() ? `#${next}` : location.pathname);
  };

  selects.forEach((select) => {
    const wanted = state.get(select.dataset.filter);
    if (wanted && Array.from(select.options).some((option) => option.value === wanted)) select.value = wanted;
    select.addEventListener("change", () => { filter(); remember(); });
  });
  search.value = state.get("q") ?? "";
  search.addEventListener("input", () => { filter(); remember(); });
  headers.forEach((header, column) => header.addEventListener("click", () => {
    sort(column, header.dataset.order === "asc" ? "desc" : "asc");
    remember();
  }));
  const column = Number(state.get("sort"));
  if (state.has("sort") && headers[column]) sort(column, state.get("order") === "desc" ? "desc" : "asc");
  filter();
})();
