// FAIR workshop: cells tagged "solution" are hidden behind a "Show solution" button.
// mkdocs-jupyter renders each notebook cell with a "celltag_<tag>" class.
function hideSolutions() {
  document.querySelectorAll(".celltag_solution").forEach(function (cell) {
    if (cell.dataset.solutionHidden) {
      return;
    }
    cell.dataset.solutionHidden = "yes";
    cell.classList.add("earthlab-solution-hidden");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "md-button earthlab-solution-toggle";
    button.textContent = "Show solution";
    button.addEventListener("click", function () {
      var hidden = cell.classList.toggle("earthlab-solution-hidden");
      button.textContent = hidden ? "Show solution" : "Hide solution";
    });
    cell.parentNode.insertBefore(button, cell);
  });
}

if (typeof document$ !== "undefined") {
  document$.subscribe(hideSolutions); // mkdocs-material instant navigation
} else {
  document.addEventListener("DOMContentLoaded", hideSolutions);
}
