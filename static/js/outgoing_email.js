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
