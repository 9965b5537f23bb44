// FAIR workshop: cells tagged "solution" are hidden behind a "Show solution" button.
// mkdocs-jupyter renders each notebook cell with a "celltag_<tag>" class.
function hideSolutions() {
  document.querySelectorAll(".celltag_solution").forEach(function (cell) {
    // the notebook template nests one cell div in another: handle the outer one only
    if (cell.dataset.solutionHidden || cell.parentElement.closest(".celltag_solution")) {
      return;
    }
    cell.dataset.solutionHidden = "yes";
    cell.classList.add("earthlab-solution-hidden");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "md-button earthlab-solution-toggle";
    button.textContent = "Show solution";
    button.setAttribute("aria-expanded", "false");
    button.addEventListener("click", function () {
      var hidden = cell.classList.toggle("earthlab-solution-hidden");
      button.textContent = hidden ? "Show solution" : "Hide solution";
      button.setAttribute("aria-expanded", hidden ? "false" : "true");
    });
    cell.parentNode.insertBefore(button, cell);
  });
}

if (typeof document$ !== "undefined") {
  document$.subscribe(hideSolutions); // mkdocs-material instant navigation
} else {
  document.addEventListener("DOMContentLoaded", hideSolutions);
}
