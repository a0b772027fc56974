// Just enough protobuf to read what vitstem writes: an ONNX TensorProto (dims, data_type, raw_data)
// and the metadata_props of a ModelProto. Works in the browser (globalThis.tensorProto) and in Node.
(function (root) {
  "use strict";
  function* fields(bytes) { // yields [field number, wire type, value or Uint8Array]
    let pos = 0;
    const varint = () => {
      let result = 0, shift = 1;
      for (;;) {
        const b = bytes[pos++];
        result += (b & 0x7f) * shift;
        if (b < 0x80) return result;
        shift *= 128;
      }
    };
    while (pos < bytes.length) {
      const key = varint(), field = Math.floor(key / 8), wire = key & 7;
      if (wire === 0) yield [field, wire, varint()];
      else if (wire === 2) { const n = varint(); yield [field, wire, bytes.subarray(pos, pos + n)]; pos += n; }
      else if (wire === 1) { pos += 8; } else if (wire === 5) { pos += 4; }
      else throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
  const TYPES = { 1: ["float32", Float32Array], 2: ["uint8", Uint8Array], 10: ["float16", Uint16Array],
                  11: ["float64", Float64Array] };
  function readTensor(bytes) {
    const dims = []; let dataType = 0, raw = null;
    for (const [field, wire, value] of fields(bytes)) {
      if (field === 1 && wire === 0) dims.push(value);
      else if (field === 1 && wire === 2) for (const [, , d] of fields(packedVarints(value))) dims.push(d);
      else if (field === 2) dataType = value;
      else if (field === 9) raw = value;
    }
    if (!TYPES[dataType] || raw === null) throw new Error(`tensor of data_type ${dataType} without raw_data is not supported`);
    const [type, Kind] = TYPES[dataType];
    const copy = new Uint8Array(raw.length); copy.set(raw); // aligned, and not shared with the file's buffer
    return { type, dims, data: new Kind(copy.buffer, 0, raw.length / Kind.BYTES_PER_ELEMENT) };
  }
  function packedVarints(bytes) { // re-key a packed run as field-1 varints so fields() can read it
    const out = []; for (const b of bytes) out.push(b);
    const keyed = []; let i = 0;
    while (i < out.length) { keyed.push(8); do { keyed.push(out[i]); } while (out[i++] >= 0x80); }
    return Uint8Array.from(keyed);
  }
  function readMetadata(modelBytes) { // ModelProto.metadata_props (field 14): {key: value}
    const meta = {}, text = new TextDecoder();
    for (const [field, wire, value] of fields(modelBytes)) {
      if (field !== 14 || wire !== 2) continue;
      let key = "", val = "";
      for (const [f, , v] of fields(value)) { if (f === 1) key = text.decode(v); else if (f === 2) val = text.decode(v); }
      meta[key] = val;
    }
    return meta;
  }
  const api = { readTensor, readMetadata };
  if (typeof module !== "undefined") module.exports = api; else root.tensorProto = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
