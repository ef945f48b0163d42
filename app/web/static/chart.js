// A small line chart in SVG, for servers without `GET /jobs/{id}/plot.png`.
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
const W = 640, H = 300, PAD = { left: 56, right: 16, top: 16, bottom: 40 };

function el(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// series: {name: [[step, value], ...]}; draws every series against step with axes and a legend.
export function drawChart(svg, series) {
  const points = Object.values(series).flat();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  if (!points.length) return;
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0 || 1)) * (W - PAD.left - PAD.right);
  const sy = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - PAD.top - PAD.bottom);
  const axis = { stroke: "#555", "stroke-width": 1 };
  svg.append(el("line", { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, ...axis }));
  svg.append(el("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom, ...axis }));
  for (const [y, label] of [[y0, y0], [y1, y1]]) {
    svg.append(el("text", { x: PAD.left - 6, y: sy(y) + 4, "text-anchor": "end", class: "tick" }, label.toPrecision(3)));
  }
  for (const x of [x0, x1]) {
    svg.append(el("text", { x: sx(x), y: H - PAD.bottom + 16, "text-anchor": "middle", class: "tick" }, x));
  }
  svg.append(el("text", { x: (W + PAD.left) / 2, y: H - 6, "text-anchor": "middle", class: "label" }, "step"));
  Object.entries(series).forEach(([name, pts], i) => {
    const color = COLORS[i % COLORS.length];
    const d = pts.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
    svg.append(el("text", { x: W - PAD.right - 4, y: PAD.top + 14 * (i + 1), "text-anchor": "end", fill: color, class: "label" }, name));
  });
}
