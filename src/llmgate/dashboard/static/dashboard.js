// llmgate dashboard: small progressive enhancements. Every page works without this file
// except the live batch preview and the moving progress bars.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function onReady(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  // Copy buttons: data-copy="#id" copies that element's text.
  function setupCopy() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source) return;
        var text = source.textContent;
        var done = function () {
          button.classList.add("copied");
          setTimeout(function () { button.classList.remove("copied"); }, 2000);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
        } else {
          selectText(source);
          try { document.execCommand("copy"); done(); } catch (e) { /* text stays selected */ }
        }
      });
    });
  }
  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // Destructive buttons ask first.
  function setupConfirm() {
    document.querySelectorAll("[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
  }

  // Time zone pickers default to the browser's zone when the URL does not name one.
  function setupTimeZone() {
    var select = document.querySelector("select[data-tz-default]");
    if (!select) return;
    var params = new URLSearchParams(window.location.search);
    if (params.has("tz")) return;
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    if (!zone || zone === select.value) return;
    var known = Array.prototype.some.call(select.options, function (o) { return o.value === zone; });
    if (!known) return;
    params.set("tz", zone);
    window.location.replace(window.location.pathname + "?" + params.toString());
  }

  function fetchJSON(url, options) {
    options = options || {};
    options.headers = Object.assign({"X-Requested-With": "fetch", "X-CSRF-Token": csrf}, options.headers || {});
    options.credentials = "same-origin";
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return {message: "Unexpected answer (HTTP " + response.status + ")."}; })
        .then(function (body) { return {status: response.status, body: body}; });
    });
  }

  // Batch form: the chosen file is uploaded once (then named by id); as the template, model or
  // settings change, the server's dry run renders the first prompts and a cost estimate (debounced).
  function setupBatchPreview() {
    var form = document.querySelector("form[data-preview-url]");
    if (!form) return;
    var out = document.getElementById("preview");
    var status = document.getElementById("upload-status");
    var fileInput = form.querySelector('input[type="file"]');
    var fileId = form.querySelector('input[name="file_id"]');
    var timer = null, seq = 0;
    function showError(message) {
      out.innerHTML = '<p class="msg msg-error" role="alert"><strong>Error:</strong> ' + escapeHTML(message) + "</p>";
    }
    function expired(result) {
      if (result.status !== 401) return false;
      window.location.href = form.getAttribute("data-signin-url");
      return true;
    }
    function run() {
      if (!fileId.value) {
        out.innerHTML = '<p class="empty">Choose a file to see the first prompts and a cost estimate.</p>';
        return;
      }
      var data = new FormData(form);
      data.delete("file");
      var mine = ++seq;
      out.setAttribute("aria-busy", "true");
      fetchJSON(form.getAttribute("data-preview-url"), {method: "POST", body: data}).then(function (result) {
        if (mine !== seq) return;  // a newer preview is on its way
        out.removeAttribute("aria-busy");
        if (expired(result)) return;
        if (result.body.html) out.innerHTML = result.body.html;
        else showError(result.body.message || "The preview failed.");
      }, function () { if (mine === seq) showError("The server could not be reached."); });
    }
    function schedule() { clearTimeout(timer); timer = setTimeout(run, 400); }
    fileInput.addEventListener("change", function () {
      fileId.value = "";
      if (!fileInput.files.length) { run(); return; }
      var data = new FormData();
      data.append("file", fileInput.files[0]);
      status.textContent = "Uploading " + fileInput.files[0].name + "…";
      fetchJSON(form.getAttribute("data-upload-url"), {method: "POST", body: data}).then(function (result) {
        if (expired(result)) return;
        if (result.status !== 200) {
          status.textContent = "";
          showError(result.body.message || "The upload failed.");
          return;
        }
        fileId.value = result.body.file_id;
        status.textContent = "Uploaded " + result.body.filename + " (" + result.body.bytes.toLocaleString() + " bytes).";
        run();
      }, function () { status.textContent = ""; showError("The upload failed: the server could not be reached."); });
    });
    form.addEventListener("input", function (event) { if (event.target !== fileInput) schedule(); });
    form.addEventListener("change", function (event) { if (event.target !== fileInput) schedule(); });
    form.addEventListener("submit", function () {
      // Already uploaded: send the id, not the bytes again.
      if (fileId.value) fileInput.disabled = true;
    });
  }

  function escapeHTML(text) {
    var div = document.createElement("div");
    div.textContent = String(text);
    return div.innerHTML;
  }

  // Batch list: poll the progress of batches still running and move their bars.
  function setupProgress() {
    var rows = document.querySelectorAll("[data-progress-url]");
    if (!rows.length) return;
    function poll() {
      var active = document.querySelectorAll('[data-progress-url][data-active="true"]');
      if (!active.length) return;
      var pending = active.length;
      active.forEach(function (row) {
        fetchJSON(row.getAttribute("data-progress-url")).then(function (result) {
          if (result.status === 401) {
            window.location.href = row.getAttribute("data-signin-url");
            return;
          }
          if (result.status === 200) update(row, result.body);
        }).finally(function () { if (--pending === 0) setTimeout(poll, 1000); });
      });
    }
    function update(row, p) {
      var bar = row.querySelector("progress");
      if (bar) { bar.max = Math.max(1, p.total || 0); bar.value = p.done || 0; }
      var text = row.querySelector(".progress-text");
      if (text) text.textContent = p.text;
      var status = row.querySelector(".status");
      if (status && p.status_label) status.textContent = p.status_label;
      row.setAttribute("data-active", p.active ? "true" : "false");
      // A new status (running, paused, finished…): reload so the row shows the actions that
      // now apply (pause, resume, download).
      if (p.status !== row.getAttribute("data-status")) setTimeout(function () { window.location.reload(); }, 300);
    }
    setTimeout(poll, 1000);
  }

  onReady(function () {
    setupCopy();
    setupConfirm();
    setupTimeZone();
    setupBatchPreview();
    setupProgress();
  });
})();
