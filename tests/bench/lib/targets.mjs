// The issue-18 performance targets: each benchmark that measures one adds a
// row to its JSON output's `targets` array with target(); run.mjs collects
// every row and prints them as one table (stdout and REPORT.md), so
// `make bench` shows each target beside its peer's figure from the same run.
//
//   target({
//     name: 'gateway plain: max sustained rate',  // what is measured
//     figure: 1000, unit: 'req/s',                 // Tether's figure
//     peer: 'direct upstream', peer_figure: 2000,  // the peer, same run
//     goal: '>= 0.5 of peer',                      // the target, as text
//     met: ratio >= 0.5,                            // judged by the benchmark
//   })
// ratio = figure / peer_figure (null without a peer). `met` is null when the
// run cannot judge (a smoke run, a missing peer); it never fails a run.
export function target({ name, figure, unit, peer = null, peer_figure = null, goal, met = null }) {
  const ratio =
    peer_figure && Number.isFinite(figure) && Number.isFinite(peer_figure) && peer_figure !== 0
      ? +(figure / peer_figure).toFixed(3)
      : null;
  return {
    name,
    figure: Number.isFinite(figure) ? +figure.toFixed(3) : null,
    unit,
    peer,
    peer_figure: Number.isFinite(peer_figure) ? +peer_figure.toFixed(3) : null,
    ratio,
    goal,
    met: met === null ? null : !!met,
  };
}

const cell = (v) => (v === null || v === undefined ? '-' : String(v));

// One table of every row, in benchmark order: Markdown (REPORT.md and stdout).
export function targetsTable(results) {
  const rows = [];
  for (const [key, r] of Object.entries(results))
    for (const t of r?.ok && Array.isArray(r.data?.targets) ? r.data.targets : []) rows.push({ key, ...t });
  if (!rows.length) return '';
  const head =
    '| bench | target | Tether | peer | peer figure | ratio | goal | met |\n|---|---|---|---|---|---|---|---|\n';
  return (
    head +
    rows
      .map(
        (t) =>
          `| ${t.key} | ${t.name} | ${cell(t.figure)} ${t.unit} | ${cell(t.peer)} | ${cell(t.peer_figure)} | ${cell(t.ratio)} | ${t.goal} | ${t.met === null ? 'n/a' : t.met ? 'yes' : 'NO'} |`,
      )
      .join('\n') +
    '\n'
  );
}
