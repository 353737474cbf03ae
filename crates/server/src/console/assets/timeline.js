// The cluster page's timeline: a line following the pointer with the exact UTC time under
// it, and, when the key may restore, a click opening the restore wizard at that second.
// The svg (drawn by the server, console/timeline.rs) says everything through data-*
// attributes: data-from and data-to (the view, Unix seconds), data-plot-x and
// data-plot-width (the plot in viewBox units), data-restore-url (absent: no restoring).
(function () {
  "use strict";

  function setUp() {
    var svg = document.getElementById("timeline");
    if (!svg || typeof svg.getScreenCTM !== "function") {
      return;
    }
    var from = Number(svg.getAttribute("data-from"));
    var to = Number(svg.getAttribute("data-to"));
    var plotX = Number(svg.getAttribute("data-plot-x"));
    var plotWidth = Number(svg.getAttribute("data-plot-width"));
    if (!isFinite(from) || !isFinite(to) || !(to > from) || !(plotWidth > 0) || !isFinite(plotX)) {
      return;
    }
    var restoreUrl = svg.getAttribute("data-restore-url");
    var cursor = svg.querySelector(".tl-cursor");
    var line = svg.querySelector(".tl-cursor-line");
    var label = svg.querySelector(".tl-cursor-label");

    // The viewBox x of a pointer event, or null when the svg is not laid out.
    function viewBoxX(event) {
      var matrix = svg.getScreenCTM();
      if (!matrix) {
        return null;
      }
      var point = svg.createSVGPoint();
      point.x = event.clientX;
      point.y = event.clientY;
      return point.matrixTransform(matrix.inverse()).x;
    }

    // The second under viewBox x, clamped to the view; null outside the plot.
    function secondAt(x) {
      if (x === null || x < plotX || x > plotX + plotWidth) {
        return null;
      }
      var t = Math.round(from + ((x - plotX) / plotWidth) * (to - from));
      return Math.min(Math.max(t, from), to);
    }

    function iso(seconds) {
      return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
    }

    function hide() {
      if (cursor) {
        cursor.classList.remove("tl-cursor-on");
      }
    }

    function show(event) {
      if (!cursor || !line || !label) {
        return;
      }
      var x = viewBoxX(event);
      var t = secondAt(x);
      if (t === null) {
        hide();
        return;
      }
      line.setAttribute("x1", String(x));
      line.setAttribute("x2", String(x));
      label.textContent = iso(t);
      // Right of the line, or left of it near the plot's right end.
      var right = x > plotX + plotWidth * 0.8;
      label.setAttribute("x", String(right ? x - 4 : x + 4));
      label.classList.toggle("tl-cursor-label-left", right);
      cursor.classList.add("tl-cursor-on");
    }

    svg.addEventListener("pointermove", show);
    svg.addEventListener("pointerleave", hide);

    if (restoreUrl) {
      svg.addEventListener("click", function (event) {
        var t = secondAt(viewBoxX(event));
        if (t === null) {
          return;
        }
        var separator = restoreUrl.indexOf("?") === -1 ? "?" : "&";
        window.location.href = restoreUrl + separator + "pit=" + String(t * 1000);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
