/**
 * Run inside a pod's network namespace (ip netns exec): binds and listens on the abstract SEQPACKET
 * name argv[3] there, sends the listening fd to the UNIX socket path argv[2] (SCM_RIGHTS), and exits.
 * What a CNI plugin does to give the agent a socket inside a pod (agent.addControlSocket({ fd })).
 */
import { native, check } from '../../lib/native/native.js';
import { encodeAddress, FdSocket } from '../../lib/native/unix-socket.js';

const [returnPath, name] = process.argv.slice(2) as [string, string];
const addon = native();
const fd = check('socket', addon.socket(false));
check('bind', addon.bind(fd, encodeAddress(name)), name);
check('listen', addon.listen(fd, 128), name);
const back = await FdSocket.connect(returnPath);
back.send(Buffer.from('fd'), [fd]);
await new Promise((resolve) => back.once('message', resolve));
back.close();
addon.close(fd);
