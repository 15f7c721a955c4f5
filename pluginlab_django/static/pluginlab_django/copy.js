// "Copy" buttons on the API key secret page: copies the secret to the clipboard.
document.addEventListener("click", function (event) {
  var button = event.target.closest(".pl-copy");
  if (!button) return;
  var target = document.getElementById(button.dataset.copyTarget);
  if (!target) return;
  var text = target.textContent.trim();
  var done = function () { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    document.execCommand("copy");
    done();
  }
});
