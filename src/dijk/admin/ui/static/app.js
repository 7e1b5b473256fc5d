// Dijk dashboard: draws the overview charts from the data the server put in the page
// (a data attribute: no inline script), with the vendored uPlot. Nothing else runs here;
// filters and paging are plain forms, enhanced by the vendored htmx.
(function () {
  "use strict";

  function series(label, stroke, fill) {
    return { label: label, stroke: stroke, width: 2, fill: fill || undefined, spanGaps: false };
  }

  function draw(element, data, lines) {
    if (!element || typeof uPlot === "undefined") { return; }
    var width = Math.max(320, element.clientWidth - 2);
    var options = {
      width: width,
      height: 220,
      series: [{}].concat(lines.map(function (line) { return series(line[0], line[2]); })),
      axes: [{}, { size: 60 }],
      scales: { x: { time: true } },
    };
    var columns = [data.t].concat(lines.map(function (line) { return data[line[1]]; }));
    element.textContent = "";
    return new uPlot(options, columns, element);
  }

  function render() {
    var holder = document.getElementById("traffic");
    if (!holder) { return; }
    var data;
    try { data = JSON.parse(holder.getAttribute("data-series") || "{}"); } catch (e) { return; }
    if (!data.t) { return; }
    draw(document.getElementById("chart-requests"), data, [
      ["requests", "requests", "#0b4f8a"],
      ["refused", "refused", "#9b1c1c"],
      ["upstream errors", "upstream_errors", "#7a4b00"],
    ]);
    draw(document.getElementById("chart-latency"), data, [
      ["p50 ms", "p50", "#1d6b35"],
      ["p95 ms", "p95", "#7a4b00"],
      ["p99 ms", "p99", "#9b1c1c"],
    ]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
