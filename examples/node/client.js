// A producthub client in Node.js, with @grpc/grpc-js and @grpc/proto-loader
// loading our protos at run time (no generated code to keep in step).
//
//   npm install @grpc/grpc-js @grpc/proto-loader
//   node examples/node/client.js 127.0.0.1:50051
//
// It creates a product, updates one field with a mask, lists and reads, then
// handles an etag conflict (ABORTED, reason ETAG_MISMATCH) and a validation
// error (INVALID_ARGUMENT with a google.rpc.BadRequest naming each bad field).
// Exits non-zero if the server does not behave so.

'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO_DIR = path.join(__dirname, '..', '..', 'proto');

const definition = protoLoader.loadSync('producthub/v1/product_service.proto', {
  includeDirs: [PROTO_DIR],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
});
const { ProductService } = grpc.loadPackageDefinition(definition).producthub.v1;

// google.rpc.Status and the detail messages, to read `grpc-status-details-bin`.
const details = new protobuf.Root();
details.resolvePath = (_origin, target) =>
  target.startsWith('google/protobuf/') ? target : path.join(PROTO_DIR, target);
details.loadSync('google/rpc/error_details.proto', { keepCase: true });
details.addJSON(protobuf.common.get('google/protobuf/any.proto').nested);
protobuf.parse(
  'syntax = "proto3"; package google.rpc;' +
    'message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }',
  details,
  { keepCase: true },
);
details.resolveAll();

/** The ErrorInfo reason and BadRequest violations of a failed call. */
function errorDetails(error) {
  const [raw] = error.metadata ? error.metadata.get('grpc-status-details-bin') : [];
  const found = { reason: undefined, violations: [] };
  if (!raw) return found;
  const status = details.lookupType('google.rpc.Status').decode(raw);
  for (const any of status.details) {
    const typeName = any.type_url.split('/').pop();
    const message = details.lookupType(typeName).decode(any.value);
    if (typeName === 'google.rpc.ErrorInfo') found.reason = message.reason;
    if (typeName === 'google.rpc.BadRequest') {
      found.violations = message.field_violations.map((v) => [v.field, v.description]);
    }
  }
  return found;
}

function call(client, method, request) {
  const deadline = new Date(Date.now() + 10_000);
  return new Promise((resolve, reject) =>
    client[method](request, { deadline }, (error, reply) => (error ? reject(error) : resolve(reply))),
  );
}

async function main(address) {
  const client = new ProductService(address, grpc.credentials.createInsecure());
  const productId = `js-${crypto.randomBytes(6).toString('hex')}`;

  const created = await call(client, 'CreateProduct', {
    product_id: productId,
    request_id: crypto.randomUUID(),
    product: { display_name: 'Gateway', description: 'First draft', labels: { env: 'staging' } },
  });
  console.log(`created ${created.name} etag=${created.etag}`);

  const updated = await call(client, 'UpdateProduct', {
    product: { name: created.name, description: 'Reviewed', etag: created.etag },
    update_mask: { paths: ['description'] },
  });
  assert.equal(updated.description, 'Reviewed');
  assert.equal(updated.display_name, 'Gateway');
  console.log(`updated description, etag=${updated.etag}`);

  const listed = await call(client, 'ListProducts', { filter: 'labels.env = "staging"', page_size: 100 });
  assert.ok(listed.products.some((p) => p.name === created.name));
  const fetched = await call(client, 'GetProduct', { name: created.name });
  assert.equal(fetched.etag, updated.etag);
  console.log(`listed ${listed.products.length} staging product(s); read back ${fetched.name}`);

  try {
    await call(client, 'UpdateProduct', {
      product: { name: created.name, description: 'Stale', etag: created.etag },
      update_mask: { paths: ['description'] },
    });
    throw new Error('a stale etag was accepted');
  } catch (error) {
    assert.equal(error.code, grpc.status.ABORTED, String(error));
    assert.equal(errorDetails(error).reason, 'ETAG_MISMATCH');
    console.log('stale etag refused: ABORTED ETAG_MISMATCH; read again and retry');
  }

  try {
    await call(client, 'CreateProduct', { product: { display_name: '', version: 'one' } });
    throw new Error('an invalid product was accepted');
  } catch (error) {
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT, String(error));
    const { violations } = errorDetails(error);
    assert.deepEqual(violations.map(([field]) => field).sort(), ['product.display_name', 'product.version']);
    for (const [field, description] of violations) console.log(`bad field ${field}: ${description}`);
  }

  // Leave nothing behind; the etag makes sure it is the version we saw.
  await call(client, 'DeleteProduct', { name: created.name, etag: fetched.etag });
  console.log(`deleted ${created.name}`);

  client.close();
  console.log('node client: OK');
}

if (process.argv.length !== 3) {
  console.error('usage: node client.js HOST:PORT');
  process.exit(2);
}
main(process.argv[2]).catch((error) => {
  console.error(error);
  process.exit(1);
});
