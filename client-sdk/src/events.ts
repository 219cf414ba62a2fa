/** A small typed event emitter: each event name maps to its listener's argument list. */

/** Event name -> the arguments its listeners receive. */
export type EventMap = Record<string, unknown[]>

/** A listener for one event of `E`. */
export type Listener<E extends EventMap, K extends keyof E> = (...args: E[K]) => void

/** Typed `on` / `off` / `once` / `emit`. `on` returns a function that removes the listener. */
export class Emitter<E extends EventMap> {
  private readonly listeners = new Map<keyof E, Set<Listener<E, keyof E>>>()

  /** Calls `listener` on every `event`; returns a function that stops it. */
  on<K extends keyof E> (event: K, listener: Listener<E, K>): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(event, set)
    }
    set.add(listener as Listener<E, keyof E>)
    return () => this.off(event, listener)
  }

  /** Calls `listener` on the next `event` only. */
  once<K extends keyof E> (event: K, listener: Listener<E, K>): () => void {
    const off = this.on(event, (...args: E[K]) => {
      off()
      listener(...args)
    })
    return off
  }

  /** Removes a listener added with {@link on}. */
  off<K extends keyof E> (event: K, listener: Listener<E, K>): void {
    this.listeners.get(event)?.delete(listener as Listener<E, keyof E>)
  }

  /** Calls every listener of `event`; a listener that throws does not stop the others. */
  emit<K extends keyof E> (event: K, ...args: E[K]): void {
    const set = this.listeners.get(event)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        listener(...args)
      } catch (err) {
        queueMicrotask(() => { throw err })
      }
    }
  }

  /** Removes every listener. */
  clear (): void {
    this.listeners.clear()
  }
}
