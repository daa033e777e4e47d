// Shows only the fields of the chosen protocol. Without JavaScript every field is
// visible and the server ignores the ones that do not apply.
(function () {
  "use strict";
  var form = document.getElementById("outgoing-email-form");
  if (!form) { return; }
  var protocol = form.querySelector("[data-protocol-select]");
  if (!protocol) { return; }
  var cloud = form.querySelector("[name=cloud]");
  var server = form.querySelector("[name=server]");
  var port = form.querySelector("[name=port]");
  var security = form.querySelector("[name=connection_security]");
  var smtpHosts = {global: "smtp.office365.com", usgov: "smtp.office365.us", china: "smtp.partner.outlook.cn"};
  var knownHosts = Object.keys(smtpHosts).map(function (key) { return smtpHosts[key]; });

  function showFieldsFor(value) {
    form.querySelectorAll("[data-protocols]").forEach(function (element) {
      if (element.getAttribute("data-protocols").split(" ").indexOf(value) === -1) {
        element.setAttribute("data-protocol-hidden", "");
      } else {
        element.removeAttribute("data-protocol-hidden");
      }
    });
  }

  // Fills Microsoft 365 defaults into fields that are empty or still hold another cloud's
  // default, never over what the administrator typed.
  function fillMicrosoft365Defaults() {
    var host = smtpHosts[cloud ? cloud.value : "global"] || smtpHosts.global;
    if (server && (server.value === "" || knownHosts.indexOf(server.value) !== -1)) { server.value = host; }
    if (port && port.value === "") { port.value = "587"; }
    if (security && security.value === "none") { security.value = "starttls"; }
  }

  protocol.addEventListener("change", function () {
    showFieldsFor(protocol.value);
    if (protocol.value === "smtp_microsoft365") { fillMicrosoft365Defaults(); }
  });
  if (cloud) {
    cloud.addEventListener("change", function () {
      if (protocol.value === "smtp_microsoft365") { fillMicrosoft365Defaults(); }
    });
  }
  showFieldsFor(protocol.value);
})();

// Shows only the fields of the chosen credential (client secret, certificate, federated).
(function () {
  "use strict";
  var form = document.getElementById("outgoing-email-form");
  if (!form) { return; }
  var choices = form.querySelectorAll("input[name=credential_type]");
  if (!choices.length) { return; }

  function chosen() {
    var value = "secret";
    choices.forEach(function (choice) { if (choice.checked) { value = choice.value; } });
    return value;
  }

  function showFieldsFor(value) {
    form.querySelectorAll("[data-credentials]").forEach(function (element) {
      if (element.getAttribute("data-credentials").split(" ").indexOf(value) === -1) {
        element.setAttribute("data-credential-hidden", "");
      } else {
        element.removeAttribute("data-credential-hidden");
      }
    });
  }

  choices.forEach(function (choice) {
    choice.addEventListener("change", function () { showFieldsFor(chosen()); });
  });
  showFieldsFor(chosen());
})();

// Save and test with live progress: the steps appear as the server completes them.
// Without JavaScript (or if streaming fails) the form posts normally and the page
// shows the result after the test.
(function () {
  "use strict";
  var form = document.getElementById("outgoing-email-form");
  var panel = document.getElementById("connection-test-progress");
  if (!form || !panel || !window.fetch || !window.TextDecoder) { return; }
  var list = panel.querySelector("ol");
  var badges = {ok: "text-bg-success", failed: "text-bg-danger", skipped: "text-bg-secondary"};

  function submitWithoutStreaming() {
    var action = document.createElement("input");
    action.type = "hidden";
    action.name = "action";
    action.value = "save_and_test";
    form.appendChild(action);
    form.submit();
  }

  function showStep(step) {
    var item = document.createElement("li");
    item.className = "list-group-item";
    item.setAttribute("data-step", step.name);
    item.setAttribute("data-status", step.status);
    if (step.code) { item.setAttribute("data-code", step.code); }
    var badge = document.createElement("span");
    badge.className = "badge me-1 " + (badges[step.status] || "text-bg-secondary");
    var label = panel.querySelector("[data-status-label='" + step.status + "']");
    badge.textContent = label ? label.textContent : step.status;
    item.appendChild(badge);
    item.appendChild(document.createTextNode(step.label + (step.status === "skipped" ? "" : " (" + step.elapsed_ms + " ms)")));
    list.appendChild(item);
  }

  function handleLine(line) {
    if (!line.trim()) { return; }
    var event = JSON.parse(line);
    if (event.event === "step") { showStep(event); }
    else if (event.event === "done") { window.location.assign(event.url); }
    else { window.location.reload(); }
  }

  form.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    if (!submitter || submitter.value !== "save_and_test") { return; }
    event.preventDefault();
    var data = new FormData(form);
    data.append("action", "save_and_test");
    data.append("stream", "1");
    list.textContent = "";
    panel.hidden = false;
    form.querySelectorAll("button[type=submit]").forEach(function (button) { button.disabled = true; });
    fetch(form.getAttribute("action") || window.location.pathname, {method: "POST", body: data, credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok || !response.body) { throw new Error("no stream"); }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            buffer += decoder.decode(chunk.value || new Uint8Array(), {stream: !chunk.done});
            var lines = buffer.split("\n");
            buffer = lines.pop();
            lines.forEach(handleLine);
            if (chunk.done) { handleLine(buffer); return null; }
            return pump();
          });
        }
        return pump();
      })
      .catch(function () { panel.hidden = true; submitWithoutStreaming(); });
  });
})();
