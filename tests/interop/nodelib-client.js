// An LwM2M 1.0 client made with Telefonica's lwm2m-node-lib (text/plain values, its own CoAP
// stack: node-coap), driven by Ferrite's interop test (tests/tests/interop_nodelib.rs).
//
// Usage: node nodelib-client.js HOST PORT ENDPOINT LIFETIME
// Prints one JSON object per line on stdout ({"event": ...}); reads commands on stdin:
//   set /3/0 9 42    set a resource (observers are notified)
//   update           send a registration Update
//   quit             de-register, then exit 0
'use strict';

const lwm2m = require('lwm2m-node-lib');
const client = lwm2m.client;
const readline = require('readline');

const [host, port, endpoint, lifetime] = process.argv.slice(2);
if (!endpoint) {
    console.error('usage: node nodelib-client.js HOST PORT ENDPOINT LIFETIME');
    process.exit(2);
}

function emit(event, fields) {
    process.stdout.write(JSON.stringify(Object.assign({ event: event }, fields || {})) + '\n');
}

function fail(what, error) {
    emit('error', { what: what, message: String(error && (error.message || error.name || error)) });
    process.exit(1);
}

const config = {
    logLevel: 'FATAL',
    client: {
        lifetime: lifetime || '60',
        version: '1.0',
        logLevel: 'FATAL',
        observe: { period: 3000 },
        ipProtocol: 'udp4',
        serverProtocol: 'udp4',
        formats: [{ name: 'lightweightm2m/text', value: 1541 }],
        writeFormat: 'lightweightm2m/text'
    }
};

// The objects and their resources (values are text, as the library keeps them).
const objects = [
    ['/3/0', { 0: 'Telefonica I+D', 1: 'lwm2m-node-lib', 2: 'NL-0001', 3: '1.4.0', 9: '87', 13: '1700000000', 16: 'U' }],
    ['/1/0', { 0: '1', 1: lifetime || '60', 7: 'U' }],
    ['/3303/0', { 5700: '21.5', 5701: 'Cel' }]
];

let device = null;

function createObjects(index, done) {
    if (index === objects.length) {
        return done();
    }
    const [uri, resources] = objects[index];
    client.registry.create(uri, (error) => {
        if (error) {
            return fail('create ' + uri, error);
        }
        const ids = Object.keys(resources);
        let pending = ids.length;
        ids.forEach((id) => {
            client.registry.setResource(uri, id, resources[id], (error) => {
                if (error) {
                    return fail('set ' + uri + '/' + id, error);
                }
                if (--pending === 0) {
                    createObjects(index + 1, done);
                }
            });
        });
    });
}

function setHandlers(info) {
    client.setHandler(info.serverInfo, 'write', (objectType, objectId, resourceId, value, callback) => {
        emit('write', { path: '/' + objectType + '/' + objectId + '/' + resourceId, value: value });
        callback(null);
    });
    client.setHandler(info.serverInfo, 'execute', (objectType, objectId, resourceId, args, callback) => {
        emit('execute', { path: '/' + objectType + '/' + objectId + '/' + resourceId, args: args });
        callback(null);
    });
    client.setHandler(info.serverInfo, 'read', (objectType, objectId, resourceId, value, callback) => {
        emit('read', { path: '/' + objectType + '/' + objectId + '/' + resourceId });
        callback(null, value);
    });
}

function onCommand(line) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'set' && words.length === 4) {
        client.registry.setResource(words[1], words[2], words[3], (error) => {
            if (error) {
                return fail('set', error);
            }
            emit('set', { path: words[1] + '/' + words[2], value: words[3] });
        });
    } else if (words[0] === 'update' && device) {
        client.update(device, (error) => {
            if (error) {
                return fail('update', error);
            }
            emit('updated');
        });
    } else if (words[0] === 'quit' && device) {
        client.unregister(device, (error) => {
            if (error) {
                return fail('unregister', error);
            }
            emit('deregistered');
            process.exit(0);
        });
    } else if (words[0] !== '') {
        emit('unknown_command', { line: line });
    }
}

client.init(config);
createObjects(0, () => {
    client.register(host, port, '', endpoint, (error, info) => {
        if (error) {
            return fail('register', error);
        }
        device = info;
        setHandlers(info);
        emit('registered', { location: info.location });
    });
});

readline.createInterface({ input: process.stdin }).on('line', onCommand);
// The test closes stdin when it is done: leave without de-registering (a lost device).
process.stdin.on('end', () => process.exit(0));
