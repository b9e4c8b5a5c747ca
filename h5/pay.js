// Paying: inside WeChat, 立即支付 opens WeChat's cashier through WeixinJSBridge. Its
// "ok" is not proof of payment: the page then asks the server (the result page),
// which asks WeChat Pay when no notification has arrived. Pages that wait for a
// payment (the QR code, a pending result) poll the server's status instead.
(function () {
  function show(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; el.style.display = 'block'; }
  }
  function hide(id) {
    var el = document.getElementById(id);
    if (el) { el.style.display = 'none'; }
  }

  var button = document.getElementById('pay-now');
  if (button) {
    // Open the cashier when WeChat's bridge is there. Asked for before it is (the
    // page's autostart, or presses while WeChat is still loading its bridge): once,
    // when WeixinJSBridgeReady comes, however many presses.
    var wanted = !!button.getAttribute('data-autostart');
    var hasBridge = function () { return typeof window.WeixinJSBridge !== 'undefined'; };
    var invoke = function () {
      wanted = false;
      if (button.disabled) return; // the cashier is open
      var params = JSON.parse(button.getAttribute('data-params'));
      var result = button.getAttribute('data-result-url');
      hide('pay-message');
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
    };
    document.addEventListener('WeixinJSBridgeReady', function () {
      if (wanted) invoke();
    }, false);
    button.addEventListener('click', function () {
      if (hasBridge()) {
        invoke();
      } else {
        wanted = true;
        show('pay-message', '请在微信中打开本页面完成支付。');
      }
    });
    // Inside WeChat the cashier opens by itself; the button is there to try again.
    if (wanted && hasBridge()) {
      setTimeout(function () { if (wanted) invoke(); }, 0);
    }
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
