// placeholder until the front end (branch uifront) lands: lists run names as text
const data = document.getElementById("gitexp-data");
const token = new URLSearchParams(location.search).get("token");
const load = data ? Promise.resolve(JSON.parse(data.textContent).runs)
  : fetch("/api/runs", {headers: token ? {"X-Gitexp-Token": token} : {}}).then(r => r.json());
load.then(p => { for (const r of p.runs) { const tr = document.createElement("tr"); tr.textContent = r.name; document.getElementById("runs").append(tr); } });
