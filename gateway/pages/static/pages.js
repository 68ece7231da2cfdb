// The audit pages' one script (no inline script: the content security policy allows only these files).
// Draws the overview's charts from the JSON block the server rendered; the same figures are in a table
// beside each chart, so nothing depends on this script.
(function () {
  "use strict";
  // colours with at least 3:1 contrast against white (WCAG 1.4.11), told apart by pattern order too
  var PALETTE = ["#01689b", "#ca005d", "#275937", "#8f4100", "#42145f", "#a90061", "#007bc7", "#673327", "#39870c", "#d52b1e"];

  function draw() {
    var source = document.getElementById("chart-data");
    if (!source || typeof Chart === "undefined") return;
    JSON.parse(source.textContent).forEach(function (chart) {
      var canvas = document.getElementById("chart-" + chart.id);
      if (!canvas) return;
      new Chart(canvas, {
        type: "bar",
        data: {
          labels: chart.labels,
          datasets: chart.datasets.map(function (ds, i) {
            return { label: ds.label, data: ds.data, backgroundColor: PALETTE[i % PALETTE.length] };
          })
        },
        options: {
          indexAxis: chart.horizontal ? "y" : "x",
          responsive: true, maintainAspectRatio: false, animation: false,
          scales: { x: { stacked: chart.stacked, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: chart.stacked, beginAtZero: true, ticks: { precision: 0 } } }
        }
      });
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw); else draw();
})();
