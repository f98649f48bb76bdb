// Chromium will not start a Web Worker from a page opened as a local file (file://), and the
// theme's search runs in a worker. On such pages this runs a worker's script in a hidden
// iframe of the same page instead, behind the same interface (postMessage in both
// directions, "message" events, terminate), so search works from the files with no server
// and no network. Served pages (http, https) keep real workers.
// (The file name contains "iframe-worker" so that the theme's offline plugin does not add
// its own copy of such a shim from a CDN.)
(function () {
  "use strict";
  if (location.protocol !== "file:") {
    return;
  }

  class FrameWorker extends EventTarget {
    constructor(url) {
      super();
      this.onmessage = null;
      this.onerror = null;
      this._pending = [];
      this._loaded = false;
      this._frame = document.createElement("iframe");
      this._frame.style.display = "none";
      document.documentElement.appendChild(this._frame);
      const scope = this._frame.contentWindow;
      // Inside the worker, postMessage sends to the page...
      scope.postMessage = (data) => {
        const copy = structuredClone(data);
        setTimeout(() => this._emit(new MessageEvent("message", { data: copy })));
      };
      scope.importScripts = () => {
        throw new Error("importScripts is not available in a worker run from a local file");
      };
      const script = scope.document.createElement("script");
      script.src = new URL(url, location.href).href;
      script.onload = () => {
        this._loaded = true;
        this._pending.splice(0).forEach((data) => this._deliver(data));
      };
      script.onerror = () => {
        this._emit(new ErrorEvent("error", { message: `could not load worker ${url}` }));
      };
      scope.document.head.appendChild(script);
    }

    // ...and the page's postMessage reaches the worker's "message" listeners.
    postMessage(data) {
      const copy = structuredClone(data);
      if (this._loaded) {
        this._deliver(copy);
      } else {
        this._pending.push(copy);
      }
    }

    terminate() {
      this._frame.remove();
    }

    _deliver(data) {
      const scope = this._frame.contentWindow;
      if (scope) {
        setTimeout(() => scope.dispatchEvent(new scope.MessageEvent("message", { data })));
      }
    }

    _emit(event) {
      const handler = event.type === "message" ? this.onmessage : this.onerror;
      if (typeof handler === "function") {
        handler.call(this, event);
      }
      this.dispatchEvent(event);
    }
  }

  window.Worker = FrameWorker;
})();
