// Starts Swagger UI on /docs. A file rather than an inline script, so that the page's
// Content-Security-Policy can allow scripts from the app itself only.
window.addEventListener("load", function () {
  var container = document.getElementById("swagger-ui");
  var config = JSON.parse(container.dataset.config);
  config.url = container.dataset.specUrl;
  config.dom_id = "#swagger-ui";
  window.ui = SwaggerUIBundle(config);
});
