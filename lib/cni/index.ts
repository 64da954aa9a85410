/** Pods: the CNI plugin's pieces and the pod manager the node agent embeds (see README.md). */
export { runPlugin, type PluginOutcome } from './plugin.js';
export { CniCode, CniError, SUPPORTED_VERSIONS, parseEnv, parseNetConf, podFromArgs, type CniEnv, type PodRef, type RingwireNetConf } from './spec.js';
export { PodManager, startPodManager, type ControlSocketHost, type PodIdentity, type PodManagerOptions } from './pod-manager.js';
export { listenInNetns, connectInNetns, netnsId, type NetnsId } from './netns.js';
export { insertPlugin, removePlugin, installConf, uninstallConf, installBinary } from './install.js';
export { PROTOCOL_VERSION, type PodEvent, type EventReply } from './protocol.js';
export { inClusterApi, serviceAccountFromApi, type KubeApi } from './kube.js';
