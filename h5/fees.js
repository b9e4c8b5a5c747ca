// Keeps the total of the ticked fee items up to date, and the pay button enabled only
// when something is ticked. Amounts come from data-fen (integer fen: no float sums).
(function () {
  var form = document.getElementById('fee-form');
  if (!form) return;
  var boxes = form.querySelectorAll('input[name=item]');
  var total = document.getElementById('total');
  var button = document.getElementById('pay-button');
  function yuan(fen) {
    var whole = Math.floor(fen / 100), cents = fen % 100;
    return whole + '.' + (cents < 10 ? '0' : '') + cents;
  }
  function update() {
    var sum = 0, ticked = 0;
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].checked) { sum += parseInt(boxes[i].getAttribute('data-fen'), 10); ticked++; }
    }
    total.textContent = '¥' + yuan(sum);
    if (button) button.disabled = ticked === 0;
  }
  for (var i = 0; i < boxes.length; i++) boxes[i].addEventListener('change', update);
  update();
})();
