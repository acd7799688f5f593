// A tiny event emitter (`on`, `once`, `off`, `emit`) that runs the same in Node and browsers.

export class Emitter {
  #handlers = new Map();

  /** Call `fn(payload)` on every `event`; returns a function that removes it. */
  on(event, fn) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /** Call `fn` on the next `event` only. */
  once(event, fn) {
    const off = this.on(event, (p) => {
      off();
      fn(p);
    });
    return off;
  }

  off(event, fn) {
    this.#handlers.get(event)?.delete(fn);
  }

  /** Resolve with the payload of the next `event` (rejects after `timeoutMs` if given). */
  next(event, timeoutMs) {
    return new Promise((resolve, reject) => {
      let timer;
      const off = this.once(event, (p) => {
        clearTimeout(timer);
        resolve(p);
      });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          off();
          reject(new Error(`no ${event} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }

  emit(event, payload) {
    const set = this.#handlers.get(event);
    if (!set) return false;
    for (const fn of [...set]) {
      try {
        fn(payload);
      } catch (e) {
        // A listener's bug must not break the socket's state machine.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
    return set.size > 0;
  }
}
