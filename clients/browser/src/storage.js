// Where the package keeps what must survive a reload: the non-extractable key pair (a
// CryptoKey is stored as itself, structured-cloned, still non-extractable), the refresh token
// (useless without the key: it is DPoP-bound) and the state of a sign-in in progress. Never
// localStorage: IndexedDB in a page, memory in tests.

/** IndexedDB, one object store, values structured-cloned. */
export class IndexedDbStorage {
  constructor(name = 'keybound') {
    this.name = name;
    this.db = null;
  }

  async open() {
    if (this.db) return this.db;
    this.db = await new Promise((resolve, reject) => {
      const req = globalThis.indexedDB.open(this.name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('kv');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this.db;
  }

  async run(mode, f) {
    const db = await this.open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction('kv', mode);
      const req = f(tx.objectStore('kv'));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  }

  get(key) { return this.run('readonly', (s) => s.get(key)); }

  put(key, value) { return this.run('readwrite', (s) => s.put(value, key)).then(() => undefined); }

  delete(key) { return this.run('readwrite', (s) => s.delete(key)).then(() => undefined); }
}

/** In memory (tests, or an app that wants no persistence at all). */
export class MemoryStorage {
  constructor() { this.map = new Map(); }

  async get(key) { return this.map.get(key); }

  async put(key, value) { this.map.set(key, value); }

  async delete(key) { this.map.delete(key); }
}
