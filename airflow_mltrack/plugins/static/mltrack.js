/* Behaviour of every page, without inline scripts (the pages' Content-Security-Policy allows none):
   - a <select data-autosubmit> submits its form when changed;
   - inside the Airflow UI's plugin frame (sandboxed "allow-scripts allow-same-origin allow-forms": no top
     navigation) links to Airflow's own pages (target="_top") open in the Airflow window, and the frame's
     page is kept in the address bar so that a reload or a shared URL reopens it (docs/ui.md, deep links);
   - "Copy link" copies a URL that opens this page inside the Airflow UI.
   The <html> element carries data-root (the relative path to the app root) and data-nav-route (the
   url_route of the "ML Tracking" page, mltrack_plugin.py). */
(function () {
  "use strict";
  var PARAM = "mltrack"; // ?mltrack=<path relative to the app> on an Airflow UI URL: the page its frame opens
  var FRAME_NAME = "mltrack-frame"; // window.name once the frame's first page was seen
  var html = document.documentElement;
  var appRoot = new URL(html.getAttribute("data-root") || "./", location.href);
  var uiRoot = new URL("../", appRoot);
  var mount = appRoot.pathname.slice(uiRoot.pathname.length); // "mltrack/"
  var navPrefix = uiRoot.pathname + "plugin/" + (html.getAttribute("data-nav-route") || "mltrack");

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.hasAttribute && target.hasAttribute("data-autosubmit") && target.form) {
      target.form.submit();
    }
  });

  /* The Airflow UI window this page is framed in (same origin), or null. */
  function airflowWindow() {
    try {
      if (window.parent !== window && window.parent.location.origin === location.origin) {
        return window.parent;
      }
    } catch (e) {
      /* framed by another origin: not the Airflow UI */
    }
    return null;
  }
  var airflow = airflowWindow();

  /* ``href`` with ?mltrack=<value> (slashes kept readable). */
  function withParam(href, value) {
    var url = new URL(href);
    url.searchParams.delete(PARAM);
    var pair = PARAM + "=" + encodeURIComponent(value).replace(/%2F/gi, "/");
    url.search = url.search ? url.search + "&" + pair : "?" + pair;
    return url;
  }

  /* A URL's path relative to the app ("experiments/3?project=a"), or null outside the app. */
  function relativePath(url) {
    if (url.origin !== appRoot.origin || url.pathname.indexOf(appRoot.pathname) !== 0) {
      return null;
    }
    return url.pathname.slice(appRoot.pathname.length) + url.search + url.hash;
  }

  /* A deep-link value as a URL of a page of the app, or null: only a relative path under the app (no
     scheme such as javascript:, no //host, no backslash or control character, nothing outside the app,
     no JSON API or static file). */
  function safeTarget(value) {
    if (typeof value !== "string" || value === "" || value.length > 4000) {
      return null;
    }
    if (/^[a-z][a-z0-9+.\-]*:/i.test(value) || /^[\/\\]/.test(value) || /[\\\u0000-\u001f\u007f]/.test(value)) {
      return null;
    }
    var url;
    try {
      url = new URL(value, appRoot);
    } catch (e) {
      return null;
    }
    var rel = relativePath(url);
    if (rel === null || /^(api|static|openapi\.json)([\/?#]|$)/.test(rel)) {
      return null;
    }
    return url;
  }

  /* Whether the Airflow UI itself keeps this frame's page in its URL (<ui>/plugin/mltrack/mltrack/...,
     the "ML Tracking" page of Airflow 3.3). */
  function nativeDeepLink(loc) {
    return (
      loc.pathname.indexOf(navPrefix + "/") === 0 &&
      loc.pathname.slice(-location.pathname.length) === location.pathname &&
      loc.search === location.search
    );
  }

  /* Opens an Airflow UI URL in the Airflow window: its pages through its router (history + popstate),
     anything else (sign in) as a link clicked in the Airflow document, which the frame's sandbox allows. */
  function openInAirflow(url) {
    var rel = url.pathname.indexOf(uiRoot.pathname) === 0 ? url.pathname.slice(uiRoot.pathname.length) : null;
    var spaPage = rel !== null && rel.indexOf(mount) !== 0 && !/^(auth|api|static|docs)([\/?#]|$)/.test(rel);
    if (spaPage) {
      var history = airflow.history;
      var state = history.state;
      var index = state && typeof state.idx === "number" ? state.idx + 1 : 0;
      var key = Math.random().toString(36).slice(2, 10);
      history.pushState({ usr: null, key: key, idx: index }, "", url.pathname + url.search + url.hash);
      airflow.dispatchEvent(new airflow.PopStateEvent("popstate", { state: history.state }));
      return;
    }
    if (rel !== null && /^auth\//.test(rel) && !url.searchParams.has("next")) {
      url.searchParams.set("next", airflow.location.href); // back to this page after signing in
    }
    var doc = airflow.document;
    var link = doc.createElement("a");
    link.href = url.href;
    link.style.display = "none";
    doc.body.appendChild(link);
    link.click();
    link.remove();
  }

  document.addEventListener("click", function (event) {
    if (!airflow || event.defaultPrevented || event.button !== 0) {
      return;
    }
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    var link = event.target && event.target.closest ? event.target.closest("a[target='_top']") : null;
    if (!link) {
      return;
    }
    var url = new URL(link.href, location.href);
    if (url.origin !== location.origin) {
      return;
    }
    try {
      openInAirflow(url);
      event.preventDefault();
    } catch (e) {
      /* leave the plain target=_top link (works when the frame may navigate the top window) */
    }
  });

  /* First page of a new frame: open the page the Airflow URL names (?mltrack=...). True when leaving. */
  function openDeepLink() {
    var first = window.name !== FRAME_NAME;
    window.name = FRAME_NAME;
    if (!first) {
      return false;
    }
    var wanted = new URLSearchParams(airflow.location.search).get(PARAM);
    var target = wanted === null ? null : safeTarget(wanted);
    if (target === null || target.href === location.href) {
      return false;
    }
    location.replace(target.href);
    return true;
  }

  /* The Airflow URL names this frame's page (?mltrack=<path>) unless Airflow already keeps it. */
  function keepInAddressBar() {
    var here = relativePath(new URL(location.href));
    var loc = airflow.location;
    if (here === null || nativeDeepLink(loc)) {
      return;
    }
    if (new URL(loc.href).searchParams.get(PARAM) === here) {
      return;
    }
    var url = withParam(loc.href, here);
    airflow.history.replaceState(airflow.history.state, "", url.pathname + url.search + url.hash);
  }

  /* A URL that opens this page inside the Airflow UI. */
  function shareUrl() {
    var here = relativePath(new URL(location.href)) || "";
    if (airflow) {
      if (nativeDeepLink(airflow.location)) {
        return airflow.location.href;
      }
      return withParam(airflow.location.href, here).href;
    }
    return withParam(new URL(navPrefix.slice(1), uiRoot.origin + "/").href, here).href;
  }

  if (airflow) {
    var leaving = false;
    try {
      leaving = openDeepLink();
    } catch (e) {
      leaving = false;
    }
    if (!leaving) {
      // After the frame's load event, when the Airflow UI (3.3) has put the page in its URL itself.
      window.addEventListener("load", function () {
        window.setTimeout(function () {
          try {
            keepInAddressBar();
          } catch (e) {
            /* the Airflow window went away */
          }
        }, 400);
      });
    }
  }

  var button = document.getElementById("copy-link");
  var field = document.getElementById("copy-link-url");
  if (button && field) {
    button.parentNode.hidden = false;
    button.addEventListener("click", function () {
      var text = shareUrl();
      field.value = text;
      field.hidden = false;
      field.focus();
      field.select();
      var done = function () {
        button.textContent = "Copied";
        window.setTimeout(function () {
          button.textContent = "Copy link";
        }, 2000);
      };
      var copied = false;
      try {
        copied = document.execCommand("copy");
      } catch (e) {
        copied = false;
      }
      if (copied) {
        done();
      } else if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () {
          button.textContent = "Copy the link above";
        });
      }
    });
  }
})();
