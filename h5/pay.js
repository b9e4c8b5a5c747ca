// Paying: inside WeChat, 立即支付 opens WeChat's cashier through WeixinJSBridge. Its
// "ok" is not proof of payment: the page then asks the server (the result page),
// which asks WeChat Pay when no notification has arrived. Pages that wait for a
// payment (the QR code, a pending result) poll the server's status instead.
(function () {
  function show(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; el.style.display = 'block'; }
  }

  var button = document.getElementById('pay-now');
  if (button) {
    // Inside WeChat the cashier opens by itself; the button is there to try again.
    if (button.getAttribute('data-autostart') && typeof window.WeixinJSBridge !== 'undefined') {
      setTimeout(function () { button.click(); }, 0);
    }
    button.addEventListener('click', function () {
      var params = JSON.parse(button.getAttribute('data-params'));
      var result = button.getAttribute('data-result-url');
      function invoke() {
        button.disabled = true;
        window.WeixinJSBridge.invoke('getBrandWCPayRequest', params, function (res) {
          button.disabled = false;
          var msg = (res && res.err_msg) || '';
          if (msg === 'get_brand_wcpay_request:ok') {
            window.location.href = result; // the server confirms, not this callback
          } else if (msg === 'get_brand_wcpay_request:cancel') {
            show('pay-message', '已取消支付，可再次点击“立即支付”。');
          } else {
            show('pay-message', '支付未完成，请稍后重试；如已扣款，请点击“我已付款，查询结果”。');
          }
        });
      }
      if (typeof window.WeixinJSBridge === 'undefined') {
        if (document.addEventListener) {
          document.addEventListener('WeixinJSBridgeReady', invoke, false);
        }
        show('pay-message', '请在微信中打开本页面完成支付。');
      } else {
        invoke();
      }
    });
  }

  var poll = document.querySelector('[data-poll-url]');
  if (poll) {
    var url = poll.getAttribute('data-poll-url');
    var done = poll.getAttribute('data-done-url');
    var tries = 0;
    var timer = setInterval(function () {
      tries++;
      if (tries > 450) { clearInterval(timer); return; } // about 15 minutes
      fetch(url, { credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) return;
          if (s.status === 'paid' || s.status === 'closed' || s.status === 'exception') {
            clearInterval(timer);
            window.location.href = done;
          }
        })
        .catch(function () {});
    }, 2000);
  }
})();
