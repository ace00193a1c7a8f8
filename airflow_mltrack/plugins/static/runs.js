/* The runs table of the experiments page (no inline scripts: the pages' CSP allows none).
   - the filter box: key suggestions for the word being typed; after an error, the cursor on its position;
   - "select all on this page" for compare, and compare sent as one short ids=1,2,3 parameter. */
(function () {
  "use strict";

  var MAX_SUGGESTIONS = 60;

  function setupSearch() {
    var input = document.getElementById("search");
    var list = document.getElementById("search-keys");
    if (!input || !list) return;
    var keys = Array.prototype.map.call(list.options, function (o) { return o.value; });

    var position = input.getAttribute("data-error-position");
    if (position !== null && position !== "") {
      var at = Math.min(parseInt(position, 10) || 0, input.value.length);
      var length = parseInt(input.getAttribute("data-error-length"), 10) || 1;
      input.focus();
      input.setSelectionRange(at, Math.min(at + length, input.value.length));
    }

    // Each suggestion is the text typed so far with the word being typed completed to a key.
    input.addEventListener("input", function () {
      var text = input.value;
      var cut = Math.max(text.lastIndexOf(" "), text.lastIndexOf("("), text.lastIndexOf("\t"));
      var head = text.slice(0, cut + 1);
      var word = text.slice(cut + 1).toLowerCase();
      var found = [];
      for (var i = 0; i < keys.length && found.length < MAX_SUGGESTIONS; i++) {
        if (!word || keys[i].toLowerCase().indexOf(word) === 0 || keys[i].toLowerCase().indexOf("." + word) > 0) {
          found.push(head + keys[i]);
        }
      }
      var fragment = document.createDocumentFragment();
      found.forEach(function (value) {
        var option = document.createElement("option");
        option.value = value;
        fragment.appendChild(option);
      });
      list.replaceChildren(fragment);
    });
  }

  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll("input[name='ids'][form='compare-form']"));
  }

  function setupSelection() {
    var all = document.getElementById("select-page");
    if (all) {
      all.addEventListener("change", function () {
        boxes().forEach(function (box) { box.checked = all.checked; });
      });
      document.addEventListener("change", function (event) {
        if (!event.target || event.target.name !== "ids") return;
        var ticked = boxes().filter(function (b) { return b.checked; }).length;
        all.checked = ticked > 0 && ticked === boxes().length;
        all.indeterminate = ticked > 0 && ticked < boxes().length;
      });
    }
    var form = document.getElementById("compare-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        var ids = boxes().filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
        event.preventDefault();
        window.location.href = form.getAttribute("action") + "?ids=" + encodeURIComponent(ids.join(",")).replace(/%2C/g, ",");
      });
    }
  }

  setupSearch();
  setupSelection();
})();
