// Leveled log lines through the host (tagged with the plugin's name and
// rate-limited). `console` goes nowhere: plugins have no stdio.
import { host } from './host.js';

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];
export const enabled = (level) => host().logEnabled(level);
export const log = (level, message) => host().log(level, String(message));
export const trace = (m) => log('trace', m);
export const debug = (m) => log('debug', m);
export const info = (m) => log('info', m);
export const warn = (m) => log('warn', m);
export const error = (m) => log('error', m);
