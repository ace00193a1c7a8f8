/* Edits of an experiment's tags and notes (templates/_edit.html), loaded only for a user who may edit the
   experiment's DAG. Each edit is a JSON PATCH to api/experiments/<id> (the UI's cookie authenticates it);
   the answer (the updated experiment) redraws the tags, the notes and the "Updated" time without a reload,
   and a refusal is shown inline, next to the control. */
(function () {
  "use strict";
  var tagsBox = document.getElementById("edit-tags");
  var notesBox = document.getElementById("edit-notes");
  var anchor = tagsBox || notesBox;
  if (!anchor) {
    return;
  }
  var editUrl = anchor.getAttribute("data-edit-url");
  var listUrl = anchor.getAttribute("data-list-url");
  var updatedAt = anchor.getAttribute("data-updated-at") || null;

  /* "2025-01-02 03:04:05 UTC", as the server writes times (naive ISO times are UTC). */
  function formatTime(iso) {
    if (!iso) {
      return "—";
    }
    var text = /(Z|[+-]\d\d:?\d\d)$/.test(iso) ? iso : iso + "Z";
    var date = new Date(text);
    if (isNaN(date.getTime())) {
      return iso;
    }
    return date.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }

  function errorBox(control) {
    var cell = control.closest("td");
    return cell ? cell.querySelector(".edit-error") : null;
  }

  function showError(control, text) {
    var box = errorBox(control);
    if (box) {
      box.textContent = text || "";
      box.hidden = !text;
    }
  }

  function messageOf(status, body) {
    if (body && typeof body.detail === "string") {
      return body.detail;
    }
    if (body && Array.isArray(body.detail)) {
      return body.detail
        .map(function (d) {
          return (d.loc || []).slice(1).join(".") + ": " + d.msg;
        })
        .join("; ");
    }
    return "The edit failed (HTTP " + status + ").";
  }

  function tagItem(name) {
    var item = document.createElement("span");
    item.className = "tag-item";
    var link = document.createElement("a");
    link.className = "tag";
    link.href = listUrl + "?tag=" + encodeURIComponent(name);
    link.textContent = name;
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "tag-remove";
    remove.setAttribute("data-tag", name);
    remove.setAttribute("aria-label", "Remove tag " + name);
    remove.title = "Remove tag " + name;
    remove.textContent = "×";
    item.appendChild(link);
    item.appendChild(remove);
    return item;
  }

  function showExperiment(experiment) {
    updatedAt = experiment.updated_at || null;
    if (tagsBox) {
      var list = tagsBox.querySelector(".edit-tag-list");
      list.replaceChildren.apply(list, (experiment.tags || []).map(tagItem));
      tagsBox.querySelector(".edit-empty").hidden = (experiment.tags || []).length > 0;
    }
    if (notesBox) {
      var notes = experiment.notes || "";
      var text = notesBox.querySelector(".notes-text");
      text.textContent = notes;
      text.hidden = !notes;
      notesBox.querySelector(".edit-empty").hidden = !!notes;
    }
    var shown = formatTime(updatedAt);
    document.querySelectorAll(".edit-updated time").forEach(function (time) {
      time.textContent = shown;
    });
    // The Details table's own "Updated" row, when the page has one.
    document.querySelectorAll("table.kv th").forEach(function (th) {
      if (th.textContent.trim() === "Updated" && th.nextElementSibling) {
        th.nextElementSibling.textContent = shown;
      }
    });
  }

  /* PATCH ``change``; resolves to the updated experiment, or null after showing the refusal. */
  function send(change, control, buttons) {
    buttons.forEach(function (b) {
      b.disabled = true;
    });
    return fetch(editUrl, {
      method: "PATCH",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(change),
    })
      .then(function (response) {
        return response
          .json()
          .catch(function () {
            return null;
          })
          .then(function (body) {
            if (!response.ok) {
              throw new Error(messageOf(response.status, body));
            }
            return body;
          });
      })
      .then(function (experiment) {
        showError(control, "");
        showExperiment(experiment);
        return experiment;
      })
      .catch(function (error) {
        showError(control, error.message || String(error));
        return null;
      })
      .finally(function () {
        buttons.forEach(function (b) {
          b.disabled = false;
        });
      });
  }

  var tagForm = document.getElementById("edit-tag-form");
  if (tagsBox && tagForm) {
    tagForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = tagForm.elements.namedItem("tag");
      var name = input.value.trim();
      if (!name) {
        showError(tagForm, "Type a tag name first.");
        return;
      }
      send({ add_tags: [name] }, tagForm, [tagForm.querySelector("button")]).then(function (done) {
        if (done) {
          input.value = "";
        }
      });
    });
    tagsBox.addEventListener("click", function (event) {
      var button = event.target.closest ? event.target.closest(".tag-remove") : null;
      if (button) {
        send({ remove_tags: [button.getAttribute("data-tag")] }, tagsBox, [button]);
      }
    });
  }

  var notesForm = document.getElementById("edit-notes-form");
  if (notesBox && notesForm) {
    var textarea = notesForm.elements.namedItem("notes");
    var openButton = notesBox.querySelector(".edit-notes-open");
    var toggle = function (editing) {
      notesForm.hidden = !editing;
      openButton.hidden = editing;
      if (editing) {
        textarea.focus();
      }
    };
    openButton.addEventListener("click", function () {
      textarea.value = notesBox.querySelector(".notes-text").textContent;
      toggle(true);
    });
    notesForm.querySelector(".edit-cancel").addEventListener("click", function () {
      showError(notesForm, "");
      toggle(false);
    });
    notesForm.addEventListener("submit", function (event) {
      event.preventDefault();
      // Notes replace the ones the page showed: a change made since is reported (409), not overwritten.
      var change = { notes: textarea.value === "" ? null : textarea.value, expected_updated_at: updatedAt };
      send(change, notesForm, Array.prototype.slice.call(notesForm.querySelectorAll("button"))).then(
        function (done) {
          if (done) {
            toggle(false);
          }
        }
      );
    });
  }
})();
