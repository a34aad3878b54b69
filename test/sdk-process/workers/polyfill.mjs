// @resonatehq/sdk 0.11.5 declares node >= 22; on Node 20 the only missing API it
// uses is Promise.withResolvers. Import this module before the SDK.
if (typeof Promise.withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    configurable: true,
    writable: true,
    value: function withResolvers() {
      let resolve;
      let reject;
      const promise = new this((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}
