/* Draws the charts of /stats from the JSON block #stats-data with the vendored Chart.js.
   No inline script: the page's Content-Security-Policy allows only the app's own files. */
(function () {
  "use strict";
  var source = document.getElementById("stats-data");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  var palette = ["#0b4f9c", "#c8102e", "#f5c542", "#1e7b34", "#a05a00", "#6b4fbb", "#5c6b7a"];
  var data = JSON.parse(source.textContent);
  window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  window.Chart.defaults.animation = false;
  data.charts.forEach(function (chart) {
    var canvas = document.getElementById(chart.id);
    if (!canvas) {
      return;
    }
    var doughnut = chart.type === "doughnut";
    var datasets = chart.datasets.map(function (ds, i) {
      return {
        label: ds.label,
        data: ds.data,
        backgroundColor: doughnut ? palette : palette[i % palette.length],
        borderWidth: doughnut ? 1 : 0
      };
    });
    var options = {responsive: true, maintainAspectRatio: false,
                   plugins: {legend: {display: doughnut || datasets.length > 1}}};
    if (!doughnut) {
      options.scales = {};
      options.scales[chart.horizontal ? "x" : "y"] = {beginAtZero: true, ticks: {precision: 0}};
      if (chart.horizontal) {
        options.indexAxis = "y";
      }
    }
    canvas.dataset.drawn = "1";
    new window.Chart(canvas, {type: chart.type, data: {labels: chart.labels, datasets: datasets},
                               options: options});
  });
}());
