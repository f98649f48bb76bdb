// MathJax 3 settings for the formulas pymdownx.arithmatex marks: \( ... \) inline and
// \[ ... \] displayed, only inside its "arithmatex" elements (code blocks are left alone).
// The SVG output draws glyphs as paths, so it needs no web fonts (which Chromium refuses
// to load from local files).
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
  svg: { fontCache: "global" },
};
